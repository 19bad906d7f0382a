// Image uploads (POST /api/media) and the served images (GET /media/<hash>.<ext>), over real HTTP
// into a real DATA_DIR.
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { rm } from 'node:fs/promises';
import { TEST_TOKEN, useTestContext } from '../support/context.js';
import { IMAGES } from '../support/images.js';

// A small limit, so that "too large" needs only a few kilobytes.
const LIMIT = 4096;
const t = useTestContext({ env: { MEDIA_MAX_BYTES: String(LIMIT) } });
let base: string;
let mediaDir: string;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  mediaDir = path.join(t.config.dataDir, 'media');
});

beforeEach(async () => {
  await rm(mediaDir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const stored = async () => (await readdir(mediaDir).catch(() => [] as string[])).sort();

function upload(body: Buffer | string, contentType = 'application/octet-stream', headers: Record<string, string> = {}) {
  return t.app.inject({ method: 'POST', url: '/api/media', headers: { ...t.auth, 'content-type': contentType, ...headers }, payload: body });
}

type Media = { url: string; hash: string; type: string; bytes: number; width: number; height: number };

describe('POST /api/media', () => {
  it.each([
    ['png', 'image/png', 3, 2],
    ['jpg', 'image/jpeg', 3, 2],
    ['gif', 'image/gif', 1, 1],
    ['webp', 'image/webp', 3, 2],
  ] as const)('stores a %s under its hash and answers its public URL', async (ext, type, width, height) => {
    const bytes = IMAGES[ext];
    // The Content-Type the client names is not believed: the bytes say what it is.
    const res = await upload(bytes, ext === 'png' ? 'image/gif' : 'application/octet-stream');
    expect(res.statusCode).toBe(201);
    const hash = sha(bytes);
    expect(res.json()).toEqual({ url: `http://broadside.test/media/${hash}.${ext}`, hash, type, bytes: bytes.length, width, height });
    expect(await stored()).toEqual([`${hash}.${ext}`]);
    expect((await readFile(path.join(mediaDir, `${hash}.${ext}`))).equals(bytes)).toBe(true);
  });

  it('stores the same bytes once: the second upload answers 200 with the same URL', async () => {
    const first = await upload(IMAGES.png, 'image/png');
    const second = await upload(IMAGES.png, 'image/png');
    expect(first.statusCode).toBe(201);
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
    expect(await stored()).toEqual([`${sha(IMAGES.png)}.png`]);
  });

  it('stores the same bytes once when they arrive at the same time, and leaves no temporary file', async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(`${base}/api/media`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'image/webp' }, body: IMAGES.webp }),
      ),
    );
    const statuses = answers.map((r) => r.status);
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as Media[];
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(7);
    expect(new Set(bodies.map((b) => b.url)).size).toBe(1);
    expect(await stored()).toEqual([`${sha(IMAGES.webp)}.webp`]);
  });

  it.each([
    ['HTML named .png', '<!doctype html><html><script>alert(1)</script></html>', 'image/png'],
    ['SVG', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>', 'image/svg+xml'],
    ['SVG sent as a PNG', '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 'image/png'],
    ['plain text', 'just some words', 'text/plain'],
    ['JSON', '{"image":"no"}', 'application/json'],
    ['a PNG signature and nothing else', IMAGES.png.subarray(0, 8), 'image/png'],
    ['a JPEG start followed by HTML', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('<html><script>alert(1)</script>')]), 'image/jpeg'],
    ['a BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]), 'image/bmp'],
  ])('refuses %s with 415 and stores nothing', async (_name, body, contentType) => {
    const res = await upload(body as Buffer | string, contentType);
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('unsupported_media_type');
    expect(await stored()).toEqual([]);
  });

  it('refuses a form upload, pointing at the raw body', async () => {
    const res = await upload('--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nabc\r\n--x--\r\n', 'multipart/form-data; boundary=x');
    expect(res.statusCode).toBe(415);
    expect(res.json().error.message).toMatch(/request body/);
  });

  it('refuses an empty body with 400', async () => {
    for (const res of [await upload(Buffer.alloc(0), 'image/png'), await t.app.inject({ method: 'POST', url: '/api/media', headers: t.auth })]) {
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('empty_body');
    }
  });

  it('refuses an image over MEDIA_MAX_BYTES with 413, by its declared length, and stores nothing', async () => {
    const big = Buffer.concat([IMAGES.png, Buffer.alloc(LIMIT)]);
    const res = await upload(big, 'image/png');
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('payload_too_large');
    expect(res.json().error.message).toContain(`${LIMIT} bytes`);
    expect(await stored()).toEqual([]);
  });

  it('refuses a streamed image without a length once it passes the limit, and stores nothing', async () => {
    // Chunked: the server learns the size only while reading. It answers 413 once past the
    // limit, although the client has more to send.
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent === 0) this.push(IMAGES.png);
        else if (sent < LIMIT * 20) this.push(Buffer.alloc(1024));
        else this.push(null);
        sent += sent === 0 ? IMAGES.png.length : 1024;
      },
    });
    const res = await fetch(`${base}/api/media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'image/png' },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toEqual({
      code: 'payload_too_large',
      message: `the image is larger than 4.0 KB (${LIMIT} bytes)`,
    });
    expect(await stored()).toEqual([]);
    // The rest was read and dropped: the kept-alive connection takes the next upload.
    const next = await fetch(`${base}/api/media`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}` }, body: IMAGES.gif });
    expect(next.status).toBe(201);
  });

  it('answers 413 to a large upload with a length while it is still being sent, not a broken pipe', async () => {
    // 4 MB against a 4 KB limit: the answer comes long before the client has sent it all.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${base}/api/media`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'image/png' },
        body: Buffer.concat([IMAGES.png, Buffer.alloc(4 * 1024 * 1024)]),
      });
      expect(res.status).toBe(413);
    }
    expect(await stored()).toEqual([]);
  });

  it('takes an image of exactly MEDIA_MAX_BYTES', async () => {
    // Bytes after a PNG's end are ignored by decoders; the file is still a PNG.
    const exact = Buffer.concat([IMAGES.png, Buffer.alloc(LIMIT - IMAGES.png.length)]);
    const res = await upload(exact, 'image/png');
    expect(res.statusCode).toBe(201);
    expect(res.json().bytes).toBe(LIMIT);
  });

  it('needs the editor token', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/media', headers: { 'content-type': 'image/png' }, payload: IMAGES.png });
    expect(res.statusCode).toBe(401);
    expect(await stored()).toEqual([]);
  });
});

describe('GET /media/<hash>.<ext>', () => {
  it('serves a stored image with its type, a year of caching, nosniff and an ETag; HEAD and If-None-Match work', async () => {
    const { url } = (await upload(IMAGES.jpg)).json() as Media;
    const res = await fetch(url.replace('http://broadside.test', base));

    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-length')).toBe(String(IMAGES.jpg.length));
    const etag = res.headers.get('etag');
    expect(etag).toBe(`"${sha(IMAGES.jpg)}"`);
    expect(Buffer.from(await res.arrayBuffer()).equals(IMAGES.jpg)).toBe(true);

    const head = await fetch(url.replace('http://broadside.test', base), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('image/jpeg');
    expect(head.headers.get('content-length')).toBe(String(IMAGES.jpg.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const again = await fetch(url.replace('http://broadside.test', base), { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    expect(again.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('answers 404 for a name that is not stored or is not a media name, and never leaves the media folder', async () => {
    const { hash } = (await upload(IMAGES.png)).json() as Media;
    await writeFile(path.join(t.config.dataDir, 'secrets.json'), '{"apiToken":"do-not-serve"}');
    const names = [
      `${'0'.repeat(64)}.png`,
      `${hash}.jpg`,
      `${hash}.svg`,
      `${hash.toUpperCase()}.png`,
      `${hash}.png.html`,
      '..%2fsecrets.json',
      '..%2F..%2Fsecrets.json',
      '%2e%2e%2fsecrets.json',
      `..%2fmedia%2f${hash}.png`,
      '.tmp-0123',
    ];
    for (const name of names) {
      const res = await t.app.inject({ method: 'GET', url: `/media/${name}` });
      expect([name, res.statusCode]).toEqual([name, 404]);
      expect(res.body).not.toContain('do-not-serve');
    }
    // Unencoded dots are resolved by clients; sent raw, they still reach nothing.
    const raw = await fetch(`${base}/media/../secrets.json`);
    expect(await raw.text()).not.toContain('do-not-serve');
  });
});
