// Builds the editor's web app (web/editor/) into dist/editor-app/, served at /editor by the API
// process (src/editor/app-routes.ts). `npm run build` runs it after the server's own build.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../dist/editor-app');

/** gzip and brotli copies of the scripts and styles, which @fastify/static serves when asked. */
const precompress = () => ({
  name: 'broadside-precompress',
  apply: 'build',
  writeBundle(_options, bundle) {
    for (const name of Object.keys(bundle).filter((n) => /\.(js|css|svg)$/.test(n))) {
      const file = path.join(outDir, name);
      const body = readFileSync(file);
      writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
      writeFileSync(`${file}.br`, brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }));
    }
  },
});

export default defineConfig({
  root: here,
  base: '/editor/',
  logLevel: 'warn',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    // No inline script or style anywhere: the page's CSP allows only files from this origin.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  plugins: [precompress()],
});
