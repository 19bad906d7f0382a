// The `broadside` CLI's editor commands, run as the real program against the real service
// listening on a free port, with a worker delivering to the test SMTP server.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TEST_TOKEN, useTestContext } from '../support/context.js';
import { copiesOf, editor, until, type Issue } from '../support/editor.js';
import { addReaders } from '../support/readers.js';
import { runCli, runCliOnTerminal, startCli, transcripts } from './run-cli.js';

const t = useTestContext({ worker: true });
const e = editor(t);
let dir: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  dir = await mkdtemp(path.join(tmpdir(), 'broadside-cli-'));
  // DATA_DIR points at an empty folder: the token comes from API_TOKEN, as the test says.
  env = { BROADSIDE_URL: `http://127.0.0.1:${port}`, API_TOKEN: TEST_TOKEN, DATA_DIR: dir };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, content);
  return p;
}

async function activeEmails(): Promise<string[]> {
  const { rows } = await t.c.pool.query<{ email: string }>(`SELECT email FROM subscribers WHERE status = 'active' ORDER BY email`);
  return rows.map((r) => r.email);
}

async function archiveSlugs(): Promise<string[]> {
  const res = await t.app.inject({ method: 'GET', url: '/issues', headers: { accept: 'application/json' } });
  expect(res.statusCode).toBe(200);
  return (res.json() as { items: { slug: string }[] }).items.map((i) => i.slug);
}

const issueCount = async () => Number((await t.c.pool.query('SELECT count(*) FROM issues')).rows[0].count);

describe('broadside publish', () => {
  it('creates the issue from a Markdown file with front matter and publishes it to the archive', async () => {
    const md = await file(
      'weekly.md',
      [
        '---',
        'subject: "Week 12: pipes | quotes & more"',
        'preheader: What happened this week',
        '---',
        'Intro paragraph.',
        '',
        '## First section',
        '',
        'Some text.',
        '',
        '## Second section',
        '',
        '- a list',
      ].join('\n'),
    );
    const r = await runCli(['publish', md], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });

    const { rows } = await t.c.pool.query<{ id: number; slug: string; subject: string; preheader: string; published_at: Date | null }>(
      'SELECT id, slug, subject, preheader, published_at FROM issues ORDER BY id DESC LIMIT 1',
    );
    const issue = rows[0]!;
    expect(issue).toMatchObject({ subject: 'Week 12: pipes | quotes & more', preheader: 'What happened this week' });
    expect(issue.published_at).toBeInstanceOf(Date);
    expect(await archiveSlugs()).toContain(issue.slug);
    const page = await t.app.inject({ method: 'GET', url: `/issues/${issue.slug}` });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('First section');

    expect(r.stdout).toContain(`Published issue ${issue.id}: Week 12: pipes | quotes & more`);
    expect(r.stdout).toMatch(new RegExp(`^\\s+id:\\s+${issue.id}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^\\s+slug:\\s+${issue.slug}$`, 'm'));
    expect(r.stdout).toContain(`web version: http://broadside.test/issues/${issue.slug}\n`);
    expect(r.stdout).toMatch(/^\s+HTML:\s+\d+\.\d KB \(2 sections\)$/m);
  });

  it('--draft only creates the issue: nothing in the archive', async () => {
    const md = await file('draft.md', '---\nsubject: Not yet\n---\nBody of a draft.\n');
    const r = await runCli(['publish', '--draft', md, '--json'], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const issue = JSON.parse(r.stdout) as Issue;
    expect(issue).toMatchObject({ subject: 'Not yet', status: 'draft', publishedAt: null });
    expect(issue).not.toHaveProperty('markdown');
    expect(await archiveSlugs()).not.toContain(issue.slug);
    const res = await e.api('GET', `/api/issues/${issue.id}`);
    expect(res.json()).toMatchObject({ status: 'draft', markdown: 'Body of a draft.\n' });
  });

  it('refuses a file with no subject, and takes one from --subject', async () => {
    const md = await file('bare.md', 'Just Markdown, no front matter.\n\n## A section\n\nText.\n');
    const before = await issueCount();
    const missing = await runCli(['publish', md], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`error: ${md} has no subject: start the file with front matter ("---", "subject: …", "---") or pass --subject\n`);
    expect(missing.stdout).toBe('');
    const emptyInFrontMatter = await runCli(['publish', await file('nosubject.md', '---\npreheader: only this\n---\nText\n')], env);
    expect(emptyInFrontMatter.code).toBe(1);
    expect(emptyInFrontMatter.stderr).toContain('the front matter needs a "subject"');
    expect(await issueCount()).toBe(before);

    const given = await runCli(['publish', md, '--subject', 'From the flag'], env);
    expect({ code: given.code, stderr: given.stderr }).toEqual({ code: 0, stderr: '' });
    expect(given.stdout).toContain(': From the flag\n');
    expect(await issueCount()).toBe(before + 1);
  });

  it('an API error exits 1 with its code and message, and creates nothing', async () => {
    const before = await issueCount();
    // Front matter and no Markdown: the API refuses an empty body.
    const r = await runCli(['publish', await file('empty.md', '---\nsubject: Empty\n---\n')], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: invalid_input: .*markdown/);
    expect(r.stdout).toBe('');
    expect(await issueCount()).toBe(before);
  });

  it('a file that cannot be read exits 1 and says why', async () => {
    const r = await runCli(['publish', path.join(dir, 'nope.md')], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: cannot read ${path.join(dir, 'nope.md')}: ENOENT\n`);
  });
});

describe('broadside send, watch, status', () => {
  const READERS = Array.from({ length: 25 }, (_, i) => `reader${String(i).padStart(2, '0')}@example.com`);
  let issue: Issue;

  beforeAll(async () => {
    await addReaders(t, [
      ...READERS.map((email) => ({ email })),
      { email: 'pending@example.com', status: 'pending' },
      { email: 'gone@example.com', status: 'unsubscribed' },
    ]);
    issue = await e.createIssue('Sent from the terminal');
  });

  it('sends by slug until done, with a progress line at a time when not on a terminal: one copy per active reader', async () => {
    const r = await runCli(['send', issue.slug, '--yes', '--interval', '0.2'], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });

    const send = await e.progress(issue.id);
    expect(send).toMatchObject({ status: 'done', total: READERS.length, submitted: READERS.length });
    const copies = copiesOf(t, send.id);
    const perReader = new Map<string, number>();
    for (const m of copies) for (const to of m.recipients) perReader.set(to, (perReader.get(to) ?? 0) + 1);
    expect([...perReader.keys()].sort()).toEqual(READERS);
    expect([...perReader.values()].every((n) => n === 1)).toBe(true);

    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`Started the send of issue ${issue.id} "Sent from the terminal".`);
    // Progress lines: time, status, finished/total, counts; the last one is done.
    const progress = lines.filter((l) => /^\d\d:\d\d:\d\d (sending|paused|done) /.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[progress.length - 1]).toMatch(
      new RegExp(`^\\d\\d:\\d\\d:\\d\\d done ${READERS.length}/${READERS.length} \\(submitted ${READERS.length}, failed 0, bounced 0, cancelled 0\\)$`),
    );
    expect(lines[lines.length - 1]).toMatch(
      new RegExp(`^Done: submitted ${READERS.length}, failed 0, bounced 0, cancelled 0 of ${READERS.length} readers in \\d+ s\\.$`),
    );
    // No bar, no cursor movement: a pipe gets plain lines.
    expect(r.stdout).not.toMatch(/\x1b|\r/);
  });

  it('sending again sends nothing twice and says so', async () => {
    const before = t.smtp.messages.length;
    const r = await runCli(['send', String(issue.id)], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`Issue ${issue.id} already has its send (done); nothing is sent twice.\n`);
    expect(r.stdout).toMatch(/^Done: submitted 25, /m);
    expect(t.smtp.messages.length).toBe(before);
  });

  it("status --json prints the issue and its send's counts for machines", async () => {
    const r = await runCli(['status', issue.slug, '--json'], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(r.stdout) as { issue: Issue; send: Record<string, unknown> };
    expect(out.issue).toMatchObject({ id: issue.id, slug: issue.slug, subject: 'Sent from the terminal', status: 'published' });
    expect(out.issue).not.toHaveProperty('markdown');
    expect(out.send).toMatchObject({
      issueId: issue.id,
      status: 'done',
      total: 25,
      queued: 0,
      sending: 0,
      submitted: 25,
      sent: 25,
      failed: 0,
      bounced: 0,
      cancelled: 0,
    });
  });

  it('status prints the same for people, by id as by slug', async () => {
    const [byId, bySlug] = await Promise.all([runCli(['status', String(issue.id)], env), runCli(['status', issue.slug], env)]);
    expect(byId.code).toBe(0);
    expect(byId.stdout).toBe(bySlug.stdout);
    expect(byId.stdout).toContain(`Issue ${issue.id}: Sent from the terminal\n`);
    expect(byId.stdout).toMatch(/^Send \d+: done$/m);
    expect(byId.stdout).toContain('queued 0 · sending 0 · submitted 25 · failed 0 · bounced 0 · cancelled 0');
  });

  it('status of an issue that has no send says so', async () => {
    const draft = await e.createIssue('Nothing sent');
    const r = await runCli(['status', draft.slug, '--json'], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ issue: { id: draft.id, status: 'draft' }, send: null });
  });

  it("an unknown issue exits 1 with the API's code and message", async () => {
    const results = await Promise.all([runCli(['status', 'no-such-issue'], env), runCli(['send', '999999'], env), runCli(['watch', 'no-such-issue'], env)]);
    for (const [r, ref] of results.map((r, i) => [r, ['no-such-issue', '999999', 'no-such-issue'][i]] as const)) {
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 1,
        stdout: '',
        stderr: `error: not_found: no issue has the id or slug "${ref}"\n`,
      });
    }
  });

  it('schedules with --at; Ctrl-C stops watching without touching the send; cancelling it before it starts leaves a draft', async () => {
    const later = await e.createIssue('Later this week');
    const at = new Date(Date.now() + 3600_000);
    at.setMilliseconds(0);
    const scheduled = await runCli(['send', later.slug, '--yes', '--at', at.toISOString()], env);
    expect({ code: scheduled.code, stderr: scheduled.stderr }).toEqual({ code: 0, stderr: '' });
    const shown = `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    expect(scheduled.stdout).toContain(`Scheduled the send of issue ${later.id} "Later this week" for ${shown}.`);
    expect(await e.progress(later.id)).toMatchObject({ status: 'scheduled', scheduledAt: at.toISOString() });

    const watching = startCli(['watch', later.slug], env);
    await until('the watcher to show the scheduled send', () => watching.stdout.includes(`scheduled: starts at ${shown}`), 10_000);
    watching.child.kill('SIGINT');
    const stopped = await watching.done;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toBe(
      `Stopped watching. The send goes on: see it with "broadside status ${later.slug}", or stop it with "broadside cancel ${later.slug}".\n`,
    );
    expect(await e.progress(later.id)).toMatchObject({ status: 'scheduled' });

    const cancelled = await runCli(['cancel', later.slug], env);
    expect({ code: cancelled.code, stderr: cancelled.stderr }).toEqual({ code: 0, stderr: '' });
    expect(cancelled.stdout).toBe(`The send of issue ${later.id} is cancelled before it mailed anyone: the issue is a draft again.\n`);
    expect((await e.api('GET', `/api/issues/${later.id}/send`)).statusCode).toBe(404);
    expect((await e.api('GET', `/api/issues/${later.id}`)).json()).toMatchObject({ state: 'draft', status: 'draft', scheduledAt: null });

    // Nothing left to watch or cancel: the API's 404, reported as such.
    const watchCancelled = await runCli(['watch', later.slug], env);
    expect([watchCancelled.code, watchCancelled.stderr]).toEqual([
      1,
      `error: not_found: issue ${later.id} has no send: start one with "broadside send ${later.slug}"\n`,
    ]);
    const again = await runCli(['cancel', later.slug], env);
    expect([again.code, again.stderr]).toEqual([1, 'error: not_found: send not found\n']);
  });

  it('--detach returns right after the trigger', async () => {
    const quick = await e.createIssue('Fire and forget');
    const r = await runCli(['send', quick.slug, '--yes', '--detach'], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`Started the send of issue ${quick.id} "Fire and forget".\nWatch it with: broadside watch ${quick.slug}\n`);
    await e.waitForStatus(quick.id, 'done');
  });

  const onTerminal = process.platform === 'linux' ? it : it.skip;
  onTerminal('draws a progress bar that fits an 80-column terminal', async () => {
    const shown = await e.createIssue('On a terminal');
    const r = await runCliOnTerminal(['send', shown.slug, '--yes'], env, { cols: 80 });
    expect({ code: r.code, output: r.code === 0 ? '' : r.output }).toEqual({ code: 0, output: '' });
    // The bar's last frame, then the summary below it.
    expect(r.output).toMatch(/\x1b\[1Gdone \[=+\] 100% 25\/25(\x1b|$)/m);
    // Every frame (drawn from column 1, escape sequences aside) stays inside 80 columns.
    const frames = r.output
      .split('\x1b[1G')
      .slice(1)
      .map((f) => f.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/[\r\n]/)[0]!);
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.filter((f) => f.length > 79)).toEqual([]);
    expect(r.output).toMatch(/Done: submitted 25, failed 0, bounced 0, cancelled 0 of 25 readers/);
  });
});

describe('broadside import', () => {
  it('streams a CSV to the import and prints its summary', async () => {
    const csv = await file(
      'readers.csv',
      `${[
        'email,name,status',
        'ann@example.org,Ann,active',
        'not-an-address,Bad,',
        'bob@example.org,"Bob, Jr.",',
        'ann@example.org,Ann again,',
        'pat@example.org,Pat,pending',
        'cy@example.org,Cy,',
      ].join('\n')}\n`,
    );
    const r = await runCli(['import', csv], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^\d\d:\d\d:\d\d uploading .*readers\.csv \(\d+ B\)$/m);
    expect(r.stdout).toContain(`Imported ${csv}: 6 rows read, 3 added, 3 rejected.\n`);
    expect(r.stdout).toMatch(/^ {2}rejected: .*invalid_email 1/m);
    expect(r.stdout).toMatch(/^ {2}line 3: not-an-address: .*\(invalid_email\)$/m);
    expect(r.stdout).toContain('  line 5: ann@example.org: the address appears earlier in the file (duplicate_in_file)\n');
    expect(r.stdout).toMatch(/^ {2}line 6: pat@example.org: .*\(pending\)$/m);

    const { rows } = await t.c.pool.query<{ email: string; name: string; status: string; consent_source: string }>(
      `SELECT email, name, status::text, consent_source::text FROM subscribers WHERE email LIKE '%@example.org' ORDER BY email`,
    );
    expect(rows).toEqual([
      { email: 'ann@example.org', name: 'Ann', status: 'active', consent_source: 'import' },
      { email: 'bob@example.org', name: 'Bob, Jr.', status: 'active', consent_source: 'import' },
      { email: 'cy@example.org', name: 'Cy', status: 'active', consent_source: 'import' },
    ]);
  });

  it('--json prints the report as the API returns it', async () => {
    const csv = await file('more.csv', 'email\nnew1@example.net\nnew2@example.net\nann@example.org\n');
    const r = await runCli(['import', csv, '--json'], env);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    expect(report).toEqual({
      rows: 3,
      accepted: 2,
      rejected: 1,
      rejectedByReason: { already_active: 1 },
      rejections: [{ line: 4, email: 'ann@example.org', reason: 'already_active', message: 'already subscribed' }],
      rejectionsTruncated: false,
    });
    expect(await activeEmails()).toEqual(expect.arrayContaining(['new1@example.net', 'new2@example.net']));
  });

  const onTerminal = process.platform === 'linux' ? it : it.skip;
  onTerminal("draws the upload's progress as a bar on a terminal", async () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `tty${i}@example.com,Reader ${i}`);
    const csv = await file('big.csv', `email,name\n${rows.join('\n')}\n`);
    const r = await runCliOnTerminal(['import', csv], env);
    expect({ code: r.code, output: r.code === 0 ? '' : r.output }).toEqual({ code: 0, output: '' });
    expect(r.output).toMatch(/uploading \[=+\] 100% \d+\.\d KB of \d+\.\d KB/);
    expect(r.output).toContain(`Imported ${csv}: 2,000 rows read, 2,000 added, 0 rejected.`);
  });

  it('a CSV the API refuses exits 1 with its code and message', async () => {
    const r = await runCli(['import', await file('no-header.csv', 'name\nAnn\n')], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: invalid_csv: the first row must be a header with an "email" column (and optionally "name")\n');
  });
});

describe('the token', () => {
  it("a wrong token exits 1 with the API's answer and a hint, and is not printed", async () => {
    const wrong = 'wrong-token-abcdefghijklmnop';
    const r = await runCli(['status', '1', '--token', wrong], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: unauthorized: missing or invalid bearer token\n' +
        'The service refused the API token: check --token or API_TOKEN (or DATA_DIR, for the development token).\n',
    );
    expect(r.stdout + r.stderr).not.toContain(wrong);
  });

  it('comes from DATA_DIR/secrets.json when neither --token nor API_TOKEN is given', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-cli-data-'));
    try {
      const none = await runCli(['status', '1'], { ...env, API_TOKEN: undefined, DATA_DIR: dataDir });
      expect(none.code).toBe(1);
      expect(none.stderr).toBe(
        `error: no API token: pass --token or set API_TOKEN (no development token either: ${path.join(dataDir, 'secrets.json')} does not exist; the service creates it at its first start)\n`,
      );

      await writeFile(path.join(dataDir, 'secrets.json'), JSON.stringify({ apiToken: TEST_TOKEN, secret: 'x'.repeat(40) }));
      const issue = await e.createIssue('Found with the file token');
      const r = await runCli(['status', String(issue.id), '--json'], { ...env, API_TOKEN: undefined, DATA_DIR: dataDir });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(r.stdout)).toMatchObject({ issue: { id: issue.id } });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('never appeared in any output of this file', () => {
    expect(transcripts.length).toBeGreaterThan(20);
    for (const out of transcripts) expect(out).not.toContain(TEST_TOKEN);
  });
});
