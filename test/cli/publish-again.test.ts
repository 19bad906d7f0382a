// `broadside publish` run again on the same file updates the issue it made, and `broadside
// unpublish`: the real program against the real service listening on a free port.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { TEST_TOKEN, useTestContext } from '../support/context.js';
import { editor, type Issue } from '../support/editor.js';
import { runCli } from './run-cli.js';
import { truncate } from '../support/truncate.js';

const t = useTestContext();
const e = editor(t);
let dir: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  dir = await mkdtemp(path.join(tmpdir(), 'broadside-cli-'));
  env = { BROADSIDE_URL: `http://127.0.0.1:${port}`, API_TOKEN: TEST_TOKEN, DATA_DIR: dir };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await truncate(t.c.pool, 'issues, sends, messages');
});

async function file(name: string, content: string): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, content);
  return p;
}

const issues = async () =>
  (
    await t.c.pool.query<{ id: number; slug: string; subject: string; markdown: string; revision: number }>(
      'SELECT id, slug, subject, markdown, revision FROM issues ORDER BY id',
    )
  ).rows;
const get = async (id: number) => (await e.api('GET', `/api/issues/${id}`)).json() as Issue & { markdown: string };

describe('broadside publish, run again', () => {
  it('writes the id into the front matter and updates that draft the next time, even with a new subject', async () => {
    const md = await file('letter.md', '\uFEFF---\r\nsubject: First try\r\n# a comment stays\r\n---\r\nBody one.\r\n');
    const first = await runCli(['publish', '--draft', md], env);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const [made] = await issues();
    expect(first.stdout).toContain(`Created draft issue ${made!.id}: First try`);
    expect(first.stdout).toContain(`"id: ${made!.id}" written into ${md}`);
    // Only the id line is added; BOM, line ends and the comment stay.
    expect(await readFile(md, 'utf8')).toBe(`\uFEFF---\r\nid: ${made!.id}\r\nsubject: First try\r\n# a comment stays\r\n---\r\nBody one.\r\n`);

    await writeFile(md, (await readFile(md, 'utf8')).replace('First try', 'Second try').replace('Body one.', 'Body two.'));
    const again = await runCli(['publish', '--draft', md], env);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toContain(`Updated draft issue ${made!.id}: Second try`);
    expect(again.stdout).not.toContain('written into');
    expect(await issues()).toEqual([expect.objectContaining({ id: made!.id, subject: 'Second try', markdown: 'Body two.\n', revision: 2 })]);
  });

  it('finds the draft by slug when the file keeps no id (no front matter, --subject)', async () => {
    const md = await file('bare.md', 'Plain body.\n');
    expect((await runCli(['publish', '--draft', md, '--subject', 'Same subject'], env)).code).toBe(0);
    await writeFile(md, 'Plain body, changed.\n');
    const again = await runCli(['publish', '--draft', md, '--subject', 'Same subject'], env);
    expect(again.code).toBe(0);
    expect(await issues()).toEqual([expect.objectContaining({ slug: 'same-subject', markdown: 'Plain body, changed.\n', revision: 2 })]);
    expect(await readFile(md, 'utf8')).toBe('Plain body, changed.\n');

    // --new creates another one all the same.
    expect((await runCli(['publish', '--draft', '--new', md, '--subject', 'Same subject'], env)).code).toBe(0);
    expect((await issues()).map((i) => i.slug)).toEqual(['same-subject', 'same-subject-2']);
  });

  it('publishes the updated draft; a published issue is corrected only with --correct, and unchanged it is left alone', async () => {
    const md = await file('pub.md', '---\nsubject: Out there\n---\nTeh typo.\n');
    expect((await runCli(['publish', md], env)).code).toBe(0);
    const [made] = await issues();
    expect((await get(made!.id)).inArchive).toBe(true);

    // Same file again: nothing to do.
    const same = await runCli(['publish', md], env);
    expect({ code: same.code, stderr: same.stderr }).toEqual({ code: 0, stderr: '' });
    expect(same.stdout).toContain(`Unchanged issue ${made!.id}`);

    await writeFile(md, (await readFile(md, 'utf8')).replace('Teh typo.', 'The typo.'));
    const refused = await runCli(['publish', md], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is already published: pass --correct to correct it');
    expect((await get(made!.id)).markdown).toBe('Teh typo.\n');

    const corrected = await runCli(['publish', md, '--correct'], env);
    expect({ code: corrected.code, stderr: corrected.stderr }).toEqual({ code: 0, stderr: '' });
    expect(corrected.stdout).toContain(`Corrected issue ${made!.id}: Out there`);
    expect(await get(made!.id)).toMatchObject({ markdown: 'The typo.\n', revision: 2, inArchive: true });
    expect(await issues()).toHaveLength(1);

    const both = await runCli(['publish', md, '--correct', '--new'], env);
    expect(both.code).toBe(2);
  });

  it('says so when the id in the file names no issue, and changes nothing', async () => {
    const md = await file('stale.md', '---\nid: 4242\nsubject: Stale\n---\nText.\n');
    const r = await runCli(['publish', md], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('names issue 4242');
    expect(await issues()).toEqual([]);
    const bad = await runCli(['publish', await file('badid.md', '---\nid: twelve\nsubject: Bad\n---\nText.\n')], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('"id" must be the number of an issue');
  });
});

describe('broadside unpublish', () => {
  it('takes a published issue out of the archive (a draft again), by slug or id; refuses what is not published', async () => {
    const issue = await e.publish((await e.createIssue('Withdraw me')).id);
    const r = await runCli(['unpublish', issue.slug], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`Unpublished issue ${issue.id}: Withdraw me`);
    expect(r.stdout).toContain('410 Gone');
    expect(r.stdout).toContain('a draft again');
    expect(await get(issue.id)).toMatchObject({ status: 'draft', inArchive: false });
    expect((await t.app.inject({ method: 'GET', url: `/issues/${issue.slug}` })).statusCode).toBe(410);

    const twice = await runCli(['unpublish', String(issue.id)], env);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^error: not_published: /);
    expect((await runCli(['unpublish'], env)).code).toBe(2);
  });
});
