import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from '@jest/globals';
import Fastify from 'fastify';
import { EDITOR_CSP, editorAppRoutes } from '../../src/editor/app-routes.js';
import { useTestContext } from '../support/context.js';
import { EDITOR_BUILD, requireBuiltEditorApp } from '../support/editor-app.js';

const t = useTestContext();
let scripts: string[] = [];

beforeAll(() => {
  requireBuiltEditorApp();
  scripts = readdirSync(path.join(EDITOR_BUILD, 'assets')).filter((f) => f.endsWith('.js'));
});

describe("the editor's app as served", () => {
  it.each(['/editor', '/editor/', '/editor/issues', '/editor/issues/42', '/editor/readers', '/editor/no/such/screen'])(
    '%s is the app page, uncached, under the strict CSP',
    async (url) => {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      const csp = res.headers['content-security-policy'] as string;
      expect(csp).toBe(EDITOR_CSP);
      const directives = Object.fromEntries(
        csp
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name, values]),
      );
      expect(directives['default-src']).toEqual(["'none'"]);
      expect(directives['script-src']).toEqual(["'self'"]);
      expect(directives['style-src']).toEqual(["'self'"]);
      expect(directives['frame-ancestors']).toEqual(["'none'"]);
      expect(directives['frame-src']).toEqual(["'self'"]);
      expect(csp).not.toMatch(/unsafe-|https?:|\*/);
      // No inline script or style, and nothing from another host: only our hashed assets.
      expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(res.body).not.toMatch(/<style|\sstyle=/);
      const urls = [...res.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
      expect(urls.filter((u) => u !== 'data:,' && !/^\/editor\/assets\/[\w-]+\.(js|css)$/.test(u!))).toEqual([]);
    },
  );

  it('serves the hashed assets for a year, immutable, compressed when the browser accepts it', async () => {
    expect(scripts.length).toBeGreaterThan(0);
    for (const name of scripts) {
      const plain = await t.app.inject({ method: 'GET', url: `/editor/assets/${name}` });
      expect(plain.statusCode).toBe(200);
      expect(plain.headers['content-type']).toMatch(/^(text|application)\/javascript/);
      expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(plain.headers['x-content-type-options']).toBe('nosniff');
      const br = await t.app.inject({ method: 'GET', url: `/editor/assets/${name}`, headers: { 'accept-encoding': 'br, gzip' } });
      expect(br.headers['content-encoding']).toBe('br');
      expect(br.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(brotliDecompressSync(br.rawPayload).toString()).toBe(plain.body);
      const gz = await t.app.inject({ method: 'GET', url: `/editor/assets/${name}`, headers: { 'accept-encoding': 'gzip' } });
      expect(gz.headers['content-encoding']).toBe('gzip');
      expect(gunzipSync(gz.rawPayload).toString()).toBe(plain.body);
    }
  });

  it('the first load of any screen is under 200 KB of compressed JavaScript (it is one bundle)', () => {
    const index = readFileSync(path.join(EDITOR_BUILD, 'index.html'), 'utf8');
    const loaded = [...index.matchAll(/src="\/editor\/assets\/([^"]+\.js)"/g)].map((m) => m[1]!);
    expect(loaded.length).toBe(1);
    // Every script in the build, loaded or not, counts: a lazy chunk would load on some screen.
    const gzipped = scripts.reduce((sum, name) => sum + readFileSync(path.join(EDITOR_BUILD, 'assets', `${name}.gz`)).length, 0);
    expect(gzipped).toBeLessThan(200 * 1024);
  });

  it('an asset that does not exist is a 404, not the app page', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/editor/assets/nope-12345678.js' });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('/editor/assets/');
  });
});

describe('without a build', () => {
  it('/editor says to run npm run build (503), and the server still starts', async () => {
    const app = Fastify({ logger: false });
    try {
      await app.register(editorAppRoutes(path.join(EDITOR_BUILD, 'no-such-build')));
      const res = await app.inject({ method: 'GET', url: '/editor/issues' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('60');
      expect(res.headers['content-security-policy']).toBe(EDITOR_CSP);
      expect(res.body).toContain('npm run build');
    } finally {
      await app.close();
    }
  });
});
