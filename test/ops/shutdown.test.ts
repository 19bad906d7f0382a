// Graceful shutdown of the API side (issue 6, item 7), on the real entry point: `npm start`'s
// src/bin/start.ts (API and worker in one process) in a child process, stopped with signals
// while a CSV import is still uploading. (A worker stopped mid-send: test/sending/crash.test.ts.)
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { createTestContext, TEST_TOKEN, type TestContext } from '../support/context.js';
import { until } from '../support/editor.js';
import { openRequest } from '../support/http-client.js';
import { workerEnv } from '../support/worker-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

type Line = Record<string, unknown> & { level: number; time: number; msg?: string };
type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** `node --import tsx src/bin/start.ts` against the test context's database, Redis prefix and SMTP sink. */
class Service {
  private readonly child: ChildProcess;
  private out = '';
  private exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  port = 0;

  constructor(t: TestContext, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/start.ts'], {
      cwd: root,
      env: workerEnv(t.config, { PORT: '0', HOST: '127.0.0.1', ...env }),
      // A pipe, not a terminal: the log must come out as JSON lines.
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.child.stderr!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    running.add(this);
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  output(): string {
    return this.out;
  }

  /** Every whole line it printed so far (not one still being written), parsed: throws if one is not JSON. */
  lines(): Line[] {
    return this.out
      .slice(0, this.out.lastIndexOf('\n') + 1)
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as Line;
        } catch {
          throw new Error(`not a JSON log line: ${l}`);
        }
      });
  }

  withMsg(msg: string | RegExp): Line[] {
    return this.lines().filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg ?? '')));
  }

  /** Polls `probe` while the process runs; fails at once, with its output, if it exits. */
  waitFor<T>(what: string, probe: () => Promise<T | false | null | undefined> | T | false | null | undefined, timeoutMs?: number): Promise<T> {
    return until(
      what,
      () => {
        if (!this.running) throw new Error(`the service exited (${JSON.stringify(this.exit)}) while waiting for ${what}:\n${this.out}`);
        return probe();
      },
      timeoutMs,
    );
  }

  async started(): Promise<void> {
    const listening = await this.waitFor('the service to listen', () => /"msg":"Server listening at http:\/\/127\.0\.0\.1:(\d+)"/.exec(this.out), 30_000);
    this.port = Number(listening[1]);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** The exit, or a failure that shows the output if it takes longer than `ms`. */
  async exitWithin(ms: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the service did not exit within ${ms} ms:\n${this.out}`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const running = new Set<Service>();

/**
 * A CSV import whose upload the test controls: the header and some rows go out at once, the rest
 * when `finish` is called. Until then the request is in flight on the server.
 */
function startImport(port: number, reqId: string, firstRows: string[]) {
  const { req, answer: response } = openRequest({
    port,
    method: 'POST',
    path: '/api/subscribers/import',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'text/csv', 'x-request-id': reqId, 'transfer-encoding': 'chunked' },
  });
  req.write(`email,name\n${firstRows.join('\n')}\n`);
  return {
    response,
    finish(lastRows: string[]) {
      req.end(`${lastRows.join('\n')}\n`);
    },
    abort() {
      req.destroy();
    },
  };
}

/** Whether a new TCP connection to the port is accepted, refused, or reset (the listener closing as it came). */
function tryConnect(port: number): Promise<'accepted' | 'refused' | 'reset'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('accepted');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve('refused');
      else if (err.code === 'ECONNRESET') resolve('reset');
      else reject(err);
    });
  });
}

const rows = (prefix: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}@example.com,Reader ${from + i}`);

async function countImported(t: TestContext, prefix: string): Promise<number> {
  const { rows: r } = await t.c.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM subscribers WHERE email LIKE $1::text AND status = 'active'", [
    `${prefix}-%`,
  ]);
  return r[0]!.n;
}

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
afterEach(async () => {
  for (const s of running) s.kill('SIGKILL');
  await Promise.all([...running].map((s) => s.exited));
  running.clear();
});
afterAll(async () => {
  await t?.close();
});

describe('graceful shutdown of `npm start` (API and worker)', () => {
  it('on SIGTERM: refuses new connections, finishes the request in flight (its rows saved), logs that it stopped, exits 0', async () => {
    const service = new Service(t);
    await service.started();
    const upload = startImport(service.port, 'held-import-1', rows('held', 0, 50));
    await service.waitFor('the import to be in flight', () => service.lines().some((l) => l.reqId === 'held-import-1' && l.msg === 'CSV import started'));

    service.kill('SIGTERM');
    await service.waitFor('the shutdown to begin', () => service.withMsg(/^shutting down/).length === 1);
    // The listener closes: a new connection is refused, while the process keeps going for the
    // request it still has.
    await service.waitFor('new connections to be refused', async () => (await tryConnect(service.port)) === 'refused', 5_000);
    expect(service.running).toBe(true);

    upload.finish(rows('held', 50, 120));
    const answer = await upload.response;
    expect([answer.status, JSON.parse(answer.body)]).toEqual([200, expect.objectContaining({ rows: 120, accepted: 120, rejected: 0 })]);
    expect(await service.exitWithin(15_000)).toEqual({ code: 0, signal: null });
    expect(await countImported(t, 'held')).toBe(120);

    // Every line is JSON (stdout is a pipe, not a terminal); the request's lines come before "stopped".
    const msgs = service.lines().map((l) => (l.reqId === 'held-import-1' ? `${l.msg} (held-import-1)` : l.msg));
    const order = ['shutting down: no new work, finishing what is in flight', 'CSV import (held-import-1)', 'request completed (held-import-1)', 'stopped'];
    expect(msgs.filter((m) => order.includes(m!))).toEqual(order);
    expect(service.withMsg('stopped')[0]).toMatchObject({ clean: true });
    expect(service.withMsg(/^shutting down/)[0]).toMatchObject({ signal: 'SIGTERM', timeoutSeconds: 30 });
  }, 60_000);

  it('a second SIGTERM or a Ctrl-C while draining does not cut the drain short', async () => {
    const service = new Service(t);
    await service.started();
    const upload = startImport(service.port, 'held-import-2', rows('twice', 0, 10));
    await service.waitFor('the import to be in flight', () => service.lines().some((l) => l.reqId === 'held-import-2' && l.msg === 'CSV import started'));

    service.kill('SIGTERM');
    await service.waitFor('the shutdown to begin', () => service.withMsg(/^shutting down/).length === 1);
    service.kill('SIGINT');
    await service.waitFor('the Ctrl-C to be noted', () => service.withMsg(/^already shutting down/).length === 1);
    service.kill('SIGTERM');
    await service.waitFor('the second SIGTERM to be noted', () => service.withMsg(/^already shutting down/).length === 2);
    expect(service.running).toBe(true);
    expect(service.withMsg(/^already shutting down/).map((l) => l.signal)).toEqual(['SIGINT', 'SIGTERM']);

    upload.finish(rows('twice', 10, 20));
    const answer = await upload.response;
    expect([answer.status, JSON.parse(answer.body)]).toEqual([200, expect.objectContaining({ accepted: 20 })]);
    expect(await service.exitWithin(15_000)).toEqual({ code: 0, signal: null });
    expect(await countImported(t, 'twice')).toBe(20);
    expect(service.withMsg(/^shutting down/)).toHaveLength(1);
  }, 60_000);

  it('gives up after SHUTDOWN_TIMEOUT_SECONDS when a request never ends, and exits 1', async () => {
    const service = new Service(t, { SHUTDOWN_TIMEOUT_SECONDS: '1' });
    await service.started();
    const upload = startImport(service.port, 'held-forever', rows('forever', 0, 5));
    await service.waitFor('the import to be in flight', () => service.lines().some((l) => l.reqId === 'held-forever' && l.msg === 'CSV import started'));

    service.kill('SIGTERM');
    expect(await service.exitWithin(15_000)).toEqual({ code: 1, signal: null });
    upload.abort();
    const [began] = service.withMsg(/^shutting down/);
    const [gaveUp] = service.withMsg(/^shutdown took longer than SHUTDOWN_TIMEOUT_SECONDS/);
    expect(began).toMatchObject({ timeoutSeconds: 1 });
    expect(gaveUp).toMatchObject({ level: 50, timeoutSeconds: 1 });
    // Not before the bound (give or take the millisecond a timer may fire early by the wall clock).
    expect(gaveUp!.time - began!.time).toBeGreaterThanOrEqual(990);
    expect(service.withMsg('stopped')).toEqual([]);
  }, 60_000);
});

describe('the shutdown bound', () => {
  it("defaults to 30 s, which the compose file's stop_grace_period leaves room for", () => {
    const bound = parseConfig({}).shutdownTimeoutSeconds;
    expect(bound).toBe(30);
    const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { stop_grace_period?: string; environment?: Record<string, unknown> }>;
    };
    for (const name of ['api', 'worker']) {
      const grace = /^(\d+)s$/.exec(compose.services[name]?.stop_grace_period ?? '');
      expect([name, grace?.[1]]).toEqual([name, expect.any(String)]);
      const set = compose.services[name]?.environment?.SHUTDOWN_TIMEOUT_SECONDS;
      const effective = set === undefined ? bound : Number(/\d+/.exec(String(set))?.[0]);
      // Docker's SIGKILL must not land before the service's own bound (plus a moment to exit).
      expect(Number(grace![1])).toBeGreaterThanOrEqual(effective + 5);
    }
  });

  it('is validated like every other setting', () => {
    expect(parseConfig({ SHUTDOWN_TIMEOUT_SECONDS: '5' }).shutdownTimeoutSeconds).toBe(5);
    expect(() => parseConfig({ SHUTDOWN_TIMEOUT_SECONDS: '0' })).toThrow(/SHUTDOWN_TIMEOUT_SECONDS must be between 1 and 3600/);
    expect(() => parseConfig({ SHUTDOWN_TIMEOUT_SECONDS: 'soon' })).toThrow(/SHUTDOWN_TIMEOUT_SECONDS must be a whole number/);
  });
});
