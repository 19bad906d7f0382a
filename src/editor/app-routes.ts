// Serves the editor's web app, built by `npm run build` (Vite) into dist/editor-app/: its hashed
// assets for a year, and its one HTML page for /editor and every path under it (the app routes
// in the browser), never cached, under a Content-Security-Policy that allows nothing but this
// origin: no inline script, no other host.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

/** Vite's output. src/editor/ and dist/editor/ are both two levels below the project root. */
export const EDITOR_APP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/editor-app');

/**
 * Scripts, styles and fetches only from here; the preview of an issue in a frame from here
 * (the preview route's own CSP lets it load the images); images from here and data:.
 */
export const EDITOR_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "manifest-src 'self'",
].join('; ');

const PAGE_HEADERS = {
  'content-security-policy': EDITOR_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Editor not built</title></head>
<body><main><h1>The editor's app is not built</h1><p>Run <code>npm run build</code> (or <code>npm ci</code>, which builds), then reload.</p></main></body></html>`;

export function editorAppRoutes(dir = EDITOR_APP_DIR): FastifyPluginAsync {
  return async (app) => {
    const indexFile = path.join(dir, 'index.html');
    // Read once: the page names the hashed assets of this build, which a new build replaces
    // along with the process.
    const index = existsSync(indexFile) ? readFileSync(indexFile, 'utf8') : undefined;
    if (!index) app.log.warn({ dir }, "the editor's app is not built (npm run build): /editor answers 503");

    const servePage = async (_request: unknown, reply: FastifyReply) => {
      reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8');
      return index ? reply.send(index) : reply.code(503).header('retry-after', '60').send(NOT_BUILT);
    };
    app.get('/editor', { schema: { hide: true } }, servePage);
    app.get('/editor/*', { schema: { hide: true } }, servePage);

    if (existsSync(path.join(dir, 'assets'))) {
      await app.register(fastifyStatic, {
        root: path.join(dir, 'assets'),
        prefix: '/editor/assets/',
        // Every name carries its content's hash: a new build makes new names.
        immutable: true,
        maxAge: '365d',
        cacheControl: true,
        etag: false,
        lastModified: false,
        index: false,
        list: false,
        wildcard: true,
        decorateReply: false,
        // gzip and brotli copies made at build time (scripts/compress-editor-app.mjs), if any.
        preCompressed: true,
        setHeaders: (res) => {
          res.header('x-content-type-options', 'nosniff');
        },
        schemaHide: true,
      });
    }
  };
}
