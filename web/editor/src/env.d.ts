// Vite bundles the stylesheet; to TypeScript the import is only a side effect.
declare module '*.css';
