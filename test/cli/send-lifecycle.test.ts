// The CLI's side of a send's life (issue 14): the audience confirmation before a send, and
// reschedule, unschedule and retry-failed, as the real program against the real service.
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { TEST_TOKEN, useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { addReaders } from '../support/readers.js';
import { cliEnv, runCli } from './run-cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const t = useTestContext();
const e = editor(t);
let env: Record<string, string | undefined>;
const READERS = 12;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  env = { BROADSIDE_URL: `http://127.0.0.1:${port}`, API_TOKEN: TEST_TOKEN, DATA_DIR: root };
  await addReaders(t, [
    ...Array.from({ length: READERS }, (_, i) => ({ email: `cli${i}@example.com` })),
    { email: 'cli-pending@example.com', status: 'pending' },
  ]);
});

/**
 * The CLI on a pseudo-terminal (util-linux `script`), answering `answer` once the question shows.
 * Output is stdout and stderr together, as the terminal shows them.
 */
function answerOnTerminal(args: string[], answer: string): Promise<{ code: number | null; output: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols 200 rows 40; exec ${[process.execPath, '--import', 'tsx', 'src/bin/broadside.ts', ...args].map(quote).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: root, env: cliEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let answered = false;
  const onData = (d: Buffer) => {
    output += d.toString('utf8');
    if (!answered && output.includes('[y/N]')) {
      answered = true;
      child.stdin.write(`${answer}\n`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

const sendRow = async (issueId: number) => (await t.c.pool.query('SELECT status::text, scheduled_at FROM sends WHERE issue_id = $1', [issueId])).rows[0];

describe('broadside send asks before it sends', () => {
  it('refuses without a terminal and without --yes: exit 1, a clear line, nothing sent', async () => {
    const issue = await e.createIssue('Not confirmed');
    const r = await runCli(['send', issue.slug], env);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: not sending to ${READERS} readers without a confirmation: stdin is not a terminal; run again with --yes to send\n`,
    });
    expect(await sendRow(issue.id)).toBeUndefined();
  });

  const onTerminal = process.platform === 'linux' ? it : it.skip;
  onTerminal('on a terminal: "Send to N readers? [y/N]"; no (or Enter) sends nothing, y sends', async () => {
    const issue = await e.createIssue('Asked first');
    const no = await answerOnTerminal(['send', issue.slug, '--detach'], '');
    expect(no.output).toContain(`Send to ${READERS} readers? [y/N]`);
    expect(no.output).toContain('error: Nothing was sent.');
    expect(no.code).toBe(1);
    expect(await sendRow(issue.id)).toBeUndefined();

    const yes = await answerOnTerminal(['send', issue.slug, '--detach'], 'y');
    expect(yes.output).toContain(`Started the send of issue ${issue.id} "Asked first".`);
    expect(yes.code).toBe(0);
    expect(await sendRow(issue.id)).toMatchObject({ status: 'sending' });
  });

  it('a mistyped year with --at: the API refuses it (scheduled_in_past), nothing sent', async () => {
    const issue = await e.createIssue('Mistyped year');
    const r = await runCli(['send', issue.slug, '--yes', '--at', '2020-01-01T09:00:00Z'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: scheduled_in_past: scheduledAt 2020-01-01T09:00:00\.000Z is in the past: it is now \S+Z \(UTC\)/);
    expect(await sendRow(issue.id)).toBeUndefined();
  });
});

describe('broadside reschedule, unschedule, retry-failed', () => {
  it('moves a scheduled send, refuses the past, takes it back to a draft, and then has nothing to take back', async () => {
    const issue = await e.createIssue('Moved by the CLI');
    await e.trigger(issue.id, { scheduledAt: new Date(Date.now() + 3600_000).toISOString() });
    const later = new Date(Date.now() + 7200_000);
    later.setMilliseconds(0);

    const moved = await runCli(['reschedule', issue.slug, '--at', later.toISOString()], env);
    expect({ code: moved.code, stderr: moved.stderr }).toEqual({ code: 0, stderr: '' });
    expect(moved.stdout).toBe(`The send of issue ${issue.id} "Moved by the CLI" now starts at ${later.toISOString().slice(0, 19).replace('T', ' ')} UTC.\n`);
    expect((await sendRow(issue.id)).scheduled_at.toISOString()).toBe(later.toISOString());

    const past = await runCli(['reschedule', issue.slug, '--at', '2020-01-01T00:00:00Z'], env);
    expect([past.code, past.stderr.startsWith('error: scheduled_in_past: ')]).toEqual([1, true]);
    const noAt = await runCli(['reschedule', issue.slug], env);
    expect(noAt.code).toBe(2);
    expect(noAt.stderr).toContain('--at <time> is required');

    const back = await runCli(['unschedule', issue.slug], env);
    expect({ code: back.code, stderr: back.stderr }).toEqual({ code: 0, stderr: '' });
    expect(back.stdout).toContain('is taken back: nothing was mailed, and the issue is a draft again.');
    expect(await sendRow(issue.id)).toBeUndefined();
    expect((await e.api('GET', `/api/issues/${issue.id}`)).json()).toMatchObject({ state: 'draft' });

    const again = await runCli(['unschedule', issue.slug], env);
    expect([again.code, again.stderr]).toEqual([1, 'error: not_found: send not found\n']);
  });

  it('takes back the scheduled send of a published issue: it stays published, and says so', async () => {
    const issue = await e.createIssue('Published, then scheduled');
    await e.publish(issue.id);
    await e.trigger(issue.id, { scheduledAt: new Date(Date.now() + 3600_000).toISOString() });
    const back = await runCli(['unschedule', issue.slug], env);
    expect({ code: back.code, stderr: back.stderr }).toEqual({ code: 0, stderr: '' });
    expect(back.stdout).toContain('is taken back: nothing was mailed, and the issue is published, as it was before (in the archive, not mailed).');
    expect((await e.api('GET', `/api/issues/${issue.id}`)).json()).toMatchObject({ state: 'published', inArchive: true });
  });

  it('unschedule once started: 409 not_scheduled; retry-failed with nothing failed says so', async () => {
    const issue = await e.createIssue('Already started');
    await e.trigger(issue.id);
    const r = await runCli(['unschedule', String(issue.id)], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: not_scheduled: the send started at /);

    const retry = await runCli(['retry-failed', String(issue.id)], env);
    expect({ code: retry.code, stderr: retry.stderr }).toEqual({ code: 0, stderr: '' });
    expect(retry.stdout).toBe(`Nothing to retry: the send of issue ${issue.id} has no failed message of a reader still active (0 failed).\n`);
  });
});
