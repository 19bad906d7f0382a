// Issue 17: every way a first start goes wrong ends in one or two plain lines that name the
// variable to change, never a stack, and exit 1. Each failure is provoked for real against the
// real entry point (`node --import tsx src/bin/start.ts`, what `npm start` runs): a closed port, a
// role that does not exist, a role that may not create the database, a Redis that is not there,
// one that wants a password, one that answers every command with an error, and ports already bound.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { configVariables } from '../../src/config/index.js';
import { REDIS_URL } from '../support/context.js';
import { admin, createTestDatabase, databaseUrl, dropTestDatabase, TEST_SERVER_URL } from '../support/db.js';
import { until } from '../support/editor.js';
import { freePort } from '../support/free-port.js';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

type Run = { code: number | null; stdout: string; stderr: string };

/** A line of a JavaScript stack trace. */
const STACK_LINE = /^\s+at /m;

let dataDir: string;
/** A migrated database, for the failures that come after Postgres. */
let dbName: string;
const prefix = `bs-test-${randomBytes(4).toString('hex')}`;

/**
 * Runs an entry point with only the given service variables (none of the developer's own) until
 * it exits; fails the test if it is still running after `timeoutMs` (it should have given up).
 */
function runService(bin: 'start' | 'worker' | 'migrate', env: Record<string, string>, timeoutMs = 45_000): Promise<Run> {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [...configVariables, 'PGUSER']) delete clean[name];
  const child = spawn(process.execPath, ['--import', 'tsx', `src/bin/${bin}.ts`], {
    cwd: root,
    env: { ...clean, DATA_DIR: dataDir, QUEUE_PREFIX: prefix, HOST: '127.0.0.1', PORT: '0', CAPTURE_SMTP_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} still running after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What every start-up failure must look like: exit 1, a few plain lines on stderr, no stack. */
function expectPlainFailure(r: Run, opts: { lines?: number } = {}): string[] {
  const all = r.stdout + r.stderr;
  expect({ code: r.code, stack: STACK_LINE.test(all) ? all : '' }).toEqual({ code: 1, stack: '' });
  const lines = r.stderr.trimEnd().split('\n');
  expect({ lines: lines.length <= (opts.lines ?? 2), stderr: r.stderr }).toEqual({ lines: true, stderr: r.stderr });
  expect(lines[0]).toMatch(/^Cannot start: /);
  return lines;
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-startup-'));
  dbName = await createTestDatabase();
});

afterAll(async () => {
  await dropTestDatabase(dbName);
  await rm(dataDir, { recursive: true, force: true });
});

describe('Postgres', () => {
  it('not there: names Postgres and DATABASE_URL without its password', async () => {
    const port = await freePort();
    const r = await runService('start', { DATABASE_URL: `postgres://broadside:pg-Secret-77@127.0.0.1:${port}/broadside` });
    const [what, hint] = expectPlainFailure(r);
    expect(what).toBe(`Cannot start: no Postgres answers at 127.0.0.1:${port} (connection refused).`);
    expect(hint).toContain(`DATABASE_URL=postgres://broadside:***@127.0.0.1:${port}/broadside`);
    expect(r.stdout + r.stderr).not.toContain('pg-Secret-77');
  }, 60_000);

  it('a role that does not exist: says so, and how to create it', async () => {
    const role = `no_such_role_${randomBytes(3).toString('hex')}`;
    const url = new URL(databaseUrl('broadside_never_created'));
    url.username = role;
    url.password = 'Role-Pass-42';
    const r = await runService('start', { DATABASE_URL: url.toString() });
    const [what, hint] = expectPlainFailure(r);
    expect(what).toMatch(new RegExp(`^Cannot start: Postgres at \\S+ has no role "${role}"\\.$`));
    expect(hint).toMatch(/^DATABASE_URL=postgres:\/\/no_such_role_\w+:\*\*\*@/);
    expect(hint).toContain(`createuser --createdb --pwprompt ${role}`);
    expect(r.stdout + r.stderr).not.toContain('Role-Pass-42');
  }, 60_000);

  it('no user in DATABASE_URL and no such role for the OS user (PGUSER here): says the user came from the system', async () => {
    const role = `os_user_${randomBytes(3).toString('hex')}`;
    const r = await runService('migrate', { DATABASE_URL: databaseUrl('broadside_never_created'), PGUSER: role });
    const [what, hint] = expectPlainFailure(r);
    expect(what).toContain(`has no role "${role}" (DATABASE_URL names no user, so the OS user's name is used)`);
    expect(hint).toMatch(/^DATABASE_URL=postgres:\/\//);
  }, 60_000);

  describe('a role that may not create databases', () => {
    const role = `bs_nocreate_${randomBytes(3).toString('hex')}`;
    beforeAll(async () => {
      await admin((c) => c.query(`CREATE ROLE ${role} LOGIN NOCREATEDB NOSUPERUSER`));
    });
    afterAll(async () => {
      await admin((c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    });

    it('and a database that does not exist: names both, and the commands that fix it', async () => {
      const url = new URL(`${TEST_SERVER_URL}/bs_missing_${randomBytes(3).toString('hex')}`);
      url.username = role;
      const database = url.pathname.slice(1);
      const r = await runService('start', { DATABASE_URL: url.toString() });
      const [what, hint] = expectPlainFailure(r);
      expect(what).toBe(`Cannot start: database "${database}" does not exist, and role "${role}" may not create it (permission denied to create database).`);
      expect(hint).toContain(`DATABASE_URL=${url.toString()}`);
      expect(hint).toContain(`createdb -O ${role} ${database}`);
      expect(hint).toContain(`ALTER ROLE ${role} CREATEDB`);
    }, 60_000);
  });
});

describe('Redis', () => {
  const withDatabase = () => ({ DATABASE_URL: databaseUrl(dbName) });

  it('not there: names Redis and REDIS_URL', async () => {
    const port = await freePort();
    const r = await runService('start', { ...withDatabase(), REDIS_URL: `redis://127.0.0.1:${port}` });
    const [what, hint] = expectPlainFailure(r);
    expect(what).toBe(`Cannot start: no Redis answers at 127.0.0.1:${port} (connection refused).`);
    expect(hint).toMatch(new RegExp(`^REDIS_URL=redis://127\\.0\\.0\\.1:${port}\\. Start Redis`));
  }, 60_000);

  describe('one that wants a password', () => {
    let redis: OwnRedis;
    beforeAll(async () => {
      redis = await startOwnRedis(['--requirepass', 'the-Right-one-9']);
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('given none: says it wants one, and where it goes', async () => {
      const r = await runService('worker', { ...withDatabase(), REDIS_URL: redis.url });
      const [what, hint] = expectPlainFailure(r);
      expect(what).toBe(`Cannot start: Redis at 127.0.0.1:${redis.port} wants a password and REDIS_URL has none.`);
      expect(hint).toContain(`redis://:PASSWORD@127.0.0.1:${redis.port}`);
    }, 60_000);

    it('given a wrong one: says it was refused, without showing it', async () => {
      const r = await runService('start', { ...withDatabase(), REDIS_URL: `redis://:wrong-Pass-31@127.0.0.1:${redis.port}` });
      const [what, hint] = expectPlainFailure(r);
      expect(what).toBe(`Cannot start: Redis at 127.0.0.1:${redis.port} refused the user name or password in REDIS_URL.`);
      expect(hint).toContain(`REDIS_URL=redis://:***@127.0.0.1:${redis.port}`);
      expect(r.stdout + r.stderr).not.toContain('wrong-Pass-31');
    }, 60_000);
  });

  describe('a server that answers every command with an error', () => {
    let server: Server;
    let port = 0;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      // One "-ERR" per RESP command received (an array: "*<n>" then n bulk strings).
      server = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        let pending = '';
        socket.on('data', (d: Buffer) => {
          pending += d.toString('latin1');
          for (;;) {
            const m = /^\*(\d+)\r\n/.exec(pending);
            if (!m) return;
            let at = m[0].length;
            for (let i = 0; i < Number(m[1]); i++) {
              const len = /^\$(\d+)\r\n/.exec(pending.slice(at));
              if (!len || pending.length < at + len[0].length + Number(len[1]) + 2) return;
              at += len[0].length + Number(len[1]) + 2;
            }
            pending = pending.slice(at);
            socket.write('-ERR this server refuses everything\r\n');
          }
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('says what it answered', async () => {
      const r = await runService('start', { ...withDatabase(), REDIS_URL: `redis://127.0.0.1:${port}` });
      const [what, hint] = expectPlainFailure(r);
      expect(what).toBe(`Cannot start: Redis at 127.0.0.1:${port} refused the connection: ERR this server refuses everything.`);
      expect(hint).toMatch(/^REDIS_URL=redis:\/\/127\.0\.0\.1:\d+\./);
    }, 60_000);
  });

  describe('an eviction policy other than noeviction', () => {
    let redis: OwnRedis;
    beforeAll(async () => {
      redis = await startOwnRedis(['--maxmemory-policy', 'allkeys-lru']);
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('is a warning at start, and the worker runs', async () => {
      const clean: NodeJS.ProcessEnv = { ...process.env };
      for (const name of configVariables) delete clean[name];
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/worker.ts'], {
        cwd: root,
        env: { ...clean, ...withDatabase(), REDIS_URL: redis.url, DATA_DIR: dataDir, QUEUE_PREFIX: prefix, METRICS_PORT: '0', LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      try {
        await until('the worker to start', () => out.includes('"msg":"worker started"'), 45_000);
        const warning = out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { level: number; msg: string; maxmemoryPolicy?: string })
          .find((l) => l.maxmemoryPolicy !== undefined);
        expect(warning).toMatchObject({ level: 40, maxmemoryPolicy: 'allkeys-lru' });
        expect(warning!.msg).toContain('not noeviction');
        expect(warning!.msg).toContain('maxmemory-policy noeviction');
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
    }, 60_000);
  });
});

describe('ports', () => {
  const bound: Server[] = [];
  async function bind(port: number, host: string): Promise<void> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    bound.push(server);
  }
  afterAll(async () => {
    await Promise.all(bound.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  it('PORT taken: names PORT, before touching Postgres or Redis', async () => {
    const port = await freePort();
    await bind(port, '127.0.0.1');
    // Postgres and Redis not there either: the port is reported first, alone.
    const r = await runService('start', { PORT: String(port), DATABASE_URL: `postgres://127.0.0.1:${await freePort()}/x` });
    const [what] = expectPlainFailure(r, { lines: 1 });
    expect(what).toBe(
      `Cannot start: PORT=${port} (the HTTP API) on 127.0.0.1: the port is already in use by another program (another Broadside?). Stop it, or set PORT to a free port.`,
    );
  }, 60_000);

  it('CAPTURE_SMTP_PORT taken: names CAPTURE_SMTP_PORT', async () => {
    const port = await freePort();
    await bind(port, '127.0.0.1');
    const r = await runService('start', { CAPTURE_SMTP_PORT: String(port), DATABASE_URL: databaseUrl(dbName), REDIS_URL });
    const [what] = expectPlainFailure(r, { lines: 1 });
    expect(what).toBe(
      `Cannot start: CAPTURE_SMTP_PORT=${port} (the capture SMTP server) on 127.0.0.1: the port is already in use by another program (another Broadside?). Stop it, or set CAPTURE_SMTP_PORT to a free port.`,
    );
  }, 60_000);

  it('both taken: both named at once', async () => {
    const [http, capture] = [await freePort(), await freePort()];
    await bind(http, '127.0.0.1');
    await bind(capture, '127.0.0.1');
    const r = await runService('start', { PORT: String(http), CAPTURE_SMTP_PORT: String(capture) });
    const lines = expectPlainFailure(r, { lines: 3 });
    expect(lines).toEqual([
      'Cannot start: ports cannot be used:',
      expect.stringMatching(new RegExp(`^  PORT=${http} \\(the HTTP API\\) on 127\\.0\\.0\\.1: the port is already in use`)),
      expect.stringMatching(new RegExp(`^  CAPTURE_SMTP_PORT=${capture} \\(the capture SMTP server\\) on 127\\.0\\.0\\.1: the port is already in use`)),
    ]);
  }, 60_000);
});

describe('configuration', () => {
  it('a bad variable: every problem listed, plainly, exit 1', async () => {
    const r = await runService('start', { PORT: 'eighty', DATABASE_URL: 'mysql://root:Db-Pass-5@db/x' });
    const lines = expectPlainFailure(r, { lines: 3 });
    expect(lines).toEqual([
      'Cannot start: invalid configuration:',
      '  - PORT must be a whole number, got "eighty"',
      '  - DATABASE_URL must use postgres: or postgresql:, got mysql:',
    ]);
    expect(r.stdout + r.stderr).not.toContain('Db-Pass-5');
  }, 60_000);
});
