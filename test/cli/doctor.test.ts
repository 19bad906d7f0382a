// `broadside doctor`, run as the real program: every check with its mark (✓, ! or ✗) against
// real services — a migrated database, Redis, an SMTP relay that wants a login — and against
// broken ones: Postgres not there, a Redis that wants a password or evicts keys, a wrong relay
// password, ports taken by other programs or by a running Broadside. Then the banner.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SMTPServer } from 'smtp-server';
import { REDIS_URL } from '../support/context.js';
import { createTestDatabase, databaseUrl, dropTestDatabase } from '../support/db.js';
import { freePort } from '../support/free-port.js';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';
import { runCli } from './run-cli.js';

const RELAY_PASSWORD = 'Relay-Pass-8d2';
const STACK_LINE = /^\s+at /m;

let dataDir: string;
let dbName: string;
let relay: SMTPServer;
let relayPort = 0;
const closers: (() => Promise<void>)[] = [];

/** The check lines of doctor's output: `{ mark, what, found }`, in order. */
function checks(stdout: string): { mark: string; what: string; found: string }[] {
  return [...stdout.matchAll(/^ {2}([✓!✗]) ([^:]+): (.*)$/gm)].map((m) => ({ mark: m[1]!, what: m[2]!, found: m[3]! }));
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-doctor-'));
  dbName = await createTestDatabase();
  // A relay that greets, offers AUTH without TLS (loopback), and knows one user.
  relay = new SMTPServer({
    banner: 'relay.test ESMTP ready',
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth: (auth, _session, cb) =>
      auth.username === 'relay-user' && auth.password === RELAY_PASSWORD ? cb(null, { user: 'relay-user' }) : cb(new Error('Invalid username or password')),
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  relayPort = (relay.server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await new Promise<void>((resolve) => relay.close(() => resolve()));
  await dropTestDatabase(dbName);
  await rm(dataDir, { recursive: true, force: true });
});

it('all well: a ✓ for each check, the banner with the generated token, exit 0', async () => {
  const port = await freePort();
  // The token a first start generated.
  await writeFile(path.join(dataDir, 'secrets.json'), JSON.stringify({ apiToken: 'generated-token-for-doctor-0001', secret: 'x'.repeat(43) }));
  const r = await runCli(['doctor'], {
    DATABASE_URL: databaseUrl(dbName),
    REDIS_URL,
    SMTP_URL: `smtp://relay-user:${RELAY_PASSWORD}@127.0.0.1:${relayPort}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
  });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  expect(checks(r.stdout)).toEqual([
    { mark: '✓', what: 'configuration', found: `valid; PUBLIC_URL unset: http://localhost:${port} (follows PORT)` },
    { mark: '✓', what: 'Postgres', found: expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:5432 as \\S+ \\(PostgreSQL \\d+.*\\), database "${dbName}"$`)) },
    { mark: '✓', what: 'migrations', found: expect.stringMatching(/^all \d+ applied$/) },
    { mark: '✓', what: 'Redis', found: expect.stringMatching(/^127\.0\.0\.1:6379 \(Redis \d+\.\d+/) },
    { mark: '✓', what: 'Redis maxmemory-policy', found: 'noeviction' },
    { mark: '✓', what: 'SMTP relay', found: expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${relayPort} greets: 220 .*relay\\.test ESMTP ready`)) },
    { mark: '✓', what: 'SMTP login', found: 'accepted as "relay-user"' },
    { mark: '✓', what: `PORT=${port}`, found: 'free on 127.0.0.1 (the HTTP API)' },
  ]);
  expect(r.stdout).toContain(`  Broadside will run at http://localhost:${port} (PUBLIC_URL unset: it follows PORT=${port})\n`);
  expect(r.stdout).toContain(`  Editor API token (generated, kept in ${path.join(dataDir, 'secrets.json')}): generated-token-for-doctor-0001\n`);
  expect(r.stdout).toContain(`  Mail goes to the relay at smtp://relay-user:***@127.0.0.1:${relayPort} (SMTP_URL)\n`);
  expect(r.stdout).toMatch(/\nAll checks passed\.\n$/);
  expect(r.stdout).not.toContain(RELAY_PASSWORD);
}, 60_000);

describe('with things wrong', () => {
  let evicting: OwnRedis;
  let locked: OwnRedis;
  let otherProgram: Server;
  let otherSmtp: SMTPServer;
  let runningBroadside: HttpServer;
  beforeAll(async () => {
    [evicting, locked] = await Promise.all([startOwnRedis(['--maxmemory-policy', 'allkeys-lru']), startOwnRedis(['--requirepass', 'Redis-Pass-7'])]);
    closers.push(
      () => evicting.stop(),
      () => locked.stop(),
    );
    // Reads what it is sent (so it sees the client hang up) and answers nothing.
    otherProgram = createServer((s) => s.resume().end());
    await new Promise<void>((resolve) => otherProgram.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => otherProgram.close(() => resolve())));
    // Another program's SMTP server on the capture port, and a Broadside (its /healthz) on PORT.
    otherSmtp = new SMTPServer({ banner: 'someone else', disabledCommands: ['STARTTLS'], logger: false });
    await new Promise<void>((resolve) => otherSmtp.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => otherSmtp.close(() => resolve())));
    runningBroadside = createHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(req.url === '/healthz' ? '{"status":"ok"}' : '{}');
    });
    await new Promise<void>((resolve) => runningBroadside.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => runningBroadside.close(() => resolve())));
  });

  it('Postgres not there, an evicting Redis, a wrong relay password, PORT taken: ✗ and ! with what to try, exit 1', async () => {
    const pgPort = await freePort();
    const taken = (otherProgram.address() as AddressInfo).port;
    const r = await runCli(['doctor'], {
      DATABASE_URL: `postgres://app:Pg-Pass-3@127.0.0.1:${pgPort}/broadside`,
      REDIS_URL: evicting.url,
      SMTP_URL: `smtp://relay-user:Wrong-Pass-4@127.0.0.1:${relayPort}`,
      PORT: String(taken),
      HOST: '127.0.0.1',
      PUBLIC_URL: 'https://news.example.com',
      API_TOKEN: 'operator-token-never-shown-0001',
      DATA_DIR: dataDir,
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' });
    expect(checks(r.stdout)).toEqual([
      { mark: '✓', what: 'configuration', found: 'valid' },
      { mark: '✗', what: 'Postgres', found: `no Postgres answers at 127.0.0.1:${pgPort} (connection refused)` },
      { mark: '✓', what: 'Redis', found: expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${evicting.port} \\(Redis`)) },
      { mark: '!', what: 'Redis maxmemory-policy', found: 'allkeys-lru, not noeviction' },
      { mark: '✓', what: 'SMTP relay', found: expect.stringMatching(/greets: 220 /) },
      { mark: '✗', what: 'SMTP login', found: expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${relayPort} refused the login as "relay-user": 535 `)) },
      { mark: '✗', what: `PORT=${taken}`, found: 'the port is already in use by another program (another Broadside?) (the HTTP API on 127.0.0.1)' },
    ]);
    // What to try, under each ✗, naming the variable (secrets shown as ***).
    expect(r.stdout).toContain(`      DATABASE_URL=postgres://app:***@127.0.0.1:${pgPort}/broadside. Start Postgres`);
    expect(r.stdout).toContain("      Redis's maxmemory-policy is allkeys-lru, not noeviction");
    expect(r.stdout).toContain(`      SMTP_URL=smtp://relay-user:***@127.0.0.1:${relayPort}. Check the user name and password in SMTP_URL`);
    expect(r.stdout).toContain('      Stop it, or set PORT to a free port.');
    expect(r.stdout).toContain('  Editor API token: the value of API_TOKEN\n');
    expect(r.stdout).toContain('  Broadside will run at https://news.example.com\n');
    expect(r.stdout).toMatch(/\n3 checks failed, 1 warning\.\n$/);
    for (const secret of ['Pg-Pass-3', 'Wrong-Pass-4', 'operator-token-never-shown-0001']) expect(r.stdout).not.toContain(secret);
    expect(r.stdout).not.toMatch(STACK_LINE);
  }, 60_000);

  it('a Redis that wants a password, another program on CAPTURE_SMTP_PORT, a Broadside already on PORT, a database not created yet', async () => {
    const capture = (otherSmtp.server.address() as AddressInfo).port;
    const running = (runningBroadside.address() as AddressInfo).port;
    const notYet = `broadside_doctor_${randomBytes(3).toString('hex')}`;
    const r = await runCli(['doctor'], {
      DATABASE_URL: databaseUrl(notYet),
      REDIS_URL: locked.url,
      PORT: String(running),
      CAPTURE_SMTP_PORT: String(capture),
      HOST: '127.0.0.1',
      DATA_DIR: path.join(dataDir, 'fresh'),
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' });
    expect(checks(r.stdout)).toEqual([
      { mark: '✓', what: 'configuration', found: `valid; PUBLIC_URL unset: http://localhost:${running} (follows PORT)` },
      { mark: '✓', what: 'Postgres', found: expect.stringContaining(`database "${notYet}" does not exist yet: the start command creates it`) },
      { mark: '✗', what: 'Redis', found: `Redis at 127.0.0.1:${locked.port} wants a password and REDIS_URL has none` },
      { mark: '✓', what: 'SMTP', found: expect.stringContaining(`SMTP_URL unset: mail goes to the built-in capture server on 127.0.0.1:${capture}`) },
      { mark: '✓', what: `PORT=${running}`, found: 'in use by a running Broadside (its /healthz answers)' },
      {
        mark: '✗',
        what: `CAPTURE_SMTP_PORT=${capture}`,
        found: 'the port is already in use by another program (another Broadside?) (the capture SMTP server on 127.0.0.1)',
      },
    ]);
    // Doctor creates nothing: no database, no token.
    const { admin } = await import('../support/db.js');
    const exists = await admin((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [notYet]));
    expect(exists.rowCount).toBe(0);
    await expect(readFile(path.join(dataDir, 'fresh', 'secrets.json'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(r.stdout).toContain(`  Broadside is running at http://localhost:${running} (PUBLIC_URL unset: it follows PORT=${running})\n`);
    expect(r.stdout).toContain(`  Editor API token: generated at the first start, into ${path.join(dataDir, 'fresh', 'secrets.json')}\n`);
    expect(r.stdout).toContain(`  Mail is captured, not delivered: http://localhost:${running}/admin/mail`);
    expect(r.stdout).toMatch(/\n2 checks failed\.\n$/);
  }, 60_000);
});
