// `broadside upload <image>` and `broadside preview <issue>`, run as the real program against the
// real service listening on a free port.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pathOf, TEST_TOKEN, useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { IMAGES } from '../support/images.js';
import { runCli, transcripts } from './run-cli.js';

const LIMIT = 64 * 1024;
const t = useTestContext({ env: { MEDIA_MAX_BYTES: String(LIMIT) } });
const { createIssue } = editor(t);
let dir: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  dir = await mkdtemp(path.join(tmpdir(), 'broadside-cli-media-'));
  env = { BROADSIDE_URL: `http://127.0.0.1:${port}`, API_TOKEN: TEST_TOKEN, DATA_DIR: dir };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  // The token never appears in anything the CLI printed (a preview link holds none).
  for (const out of transcripts) expect(out).not.toContain(TEST_TOKEN);
});

async function file(name: string, content: Buffer | string): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, content);
  return p;
}

const stored = async () => (await readdir(path.join(t.config.dataDir, 'media')).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));

describe('broadside upload', () => {
  it('uploads an image whatever its name and prints its URL alone on stdout', async () => {
    const r = await runCli(['upload', await file('holiday photo.dat', IMAGES.jpg)], env);
    const hash = createHash('sha256').update(IMAGES.jpg).digest('hex');
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `http://broadside.test/media/${hash}.jpg\n` });
    expect(r.stderr).toContain('image/jpeg, 3×2');
    expect(await stored()).toContain(`${hash}.jpg`);
    // The URL answers with the image.
    const served = await t.app.inject({ method: 'GET', url: pathOf(r.stdout.trim()) });
    expect(served.rawPayload.equals(IMAGES.jpg)).toBe(true);
  });

  it('prints the stored image as JSON with --json', async () => {
    const r = await runCli(['upload', await file('pixel.gif', IMAGES.gif), '--json'], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ type: 'image/gif', bytes: IMAGES.gif.length, width: 1, height: 1 });
  });

  it("fails with the service's reason for a file that only pretends to be an image", async () => {
    const before = await stored();
    const r = await runCli(['upload', await file('fake.png', '<html><script>alert(1)</script></html>')], env);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(/not a PNG, JPEG, GIF or WebP image/);
    expect(await stored()).toEqual(before);
  });

  it('fails for a file over the limit, and for a file that is not there', async () => {
    const big = await runCli(['upload', await file('big.png', Buffer.concat([IMAGES.png, Buffer.alloc(4 * 1024 * 1024)]))], env);
    expect({ code: big.code, stdout: big.stdout }).toEqual({ code: 1, stdout: '' });
    expect(big.stderr).toMatch(/larger than/);
    const missing = await runCli(['upload', path.join(dir, 'nope.png')], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read');
  });
});

describe('broadside preview', () => {
  it('prints a link that opens the preview in a browser, by id or by slug', async () => {
    const issue = await createIssue('Preview from the CLI');
    for (const ref of [String(issue.id), issue.slug]) {
      const r = await runCli(['preview', ref], env);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^http:\/\/broadside\.test\/preview\/\S+\n$/);
      expect(r.stderr).toContain('needs no token');
      const page = await t.app.inject({ method: 'GET', url: pathOf(r.stdout.trim()) });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('Preview: Preview from the CLI');
    }
    const json = await runCli(['preview', String(issue.id), '--json'], env);
    expect(Object.keys(JSON.parse(json.stdout))).toEqual(['url', 'expiresAt']);
  });

  it('fails for an issue that does not exist', async () => {
    const r = await runCli(['preview', 'no-such-issue'], env);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr).toContain('no-such-issue');
  });

  it('is what publish --draft points to', async () => {
    const md = await file('draft.md', '---\nsubject: A draft to look at\n---\nIntro.\n\n## One\n\nText.\n');
    const r = await runCli(['publish', '--draft', md], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}preview: +broadside preview \d+/m);
  });
});
