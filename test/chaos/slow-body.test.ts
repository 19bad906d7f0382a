// Slow and idle clients against the app listening on a real port (issue 12, item 7): raw
// sockets that send a request a byte at a time, stall, or just sit there, and one address that
// opens connection after connection. Short timeouts are configured so each case takes seconds;
// the defaults and their reasons are in the README ("HTTP timeouts and connection limits").
// Peers bind 127.0.0.x addresses of their own: Linux routes all of 127.0.0.0/8 to loopback.
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.js';
import { TEST_TOKEN, useTestContext } from '../support/context.js';
import { openRequest } from '../support/http-client.js';
import { captureLog } from '../support/log-capture.js';
import { until } from '../support/wait.js';

// Each case is ended by one bound before the others could: headers < idle < body < upload.
const HEADERS_S = 3;
const IDLE_S = 4;
const BODY_S = 6;
const UPLOAD_S = 12;
const KEEP_ALIVE_S = 1;
/** Node checks the headers and upload bounds once a second (see serverOptions). */
const CHECK_MS = 1000;
/** What a loaded test machine may add to a timer. */
const SLACK_MS = 1500;

const log = captureLog<{ msg?: string; peer?: string; max?: number }>();
const t = useTestContext({
  logTo: log.stream,
  env: {
    LOG_LEVEL: 'info',
    HTTP_HEADERS_TIMEOUT_SECONDS: String(HEADERS_S),
    HTTP_BODY_TIMEOUT_SECONDS: String(BODY_S),
    HTTP_UPLOAD_TIMEOUT_SECONDS: String(UPLOAD_S),
    HTTP_IDLE_TIMEOUT_SECONDS: String(IDLE_S),
    HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: String(KEEP_ALIVE_S),
  },
});
let port: number;
beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});

/** A raw connection: what it received, and when (ms after opening) the server closed it. */
type Raw = { socket: Socket; received: () => string; closed: Promise<number> };
const opened: Socket[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
});

async function open(appPort: number, from = '127.0.0.1'): Promise<Raw> {
  const socket = connect({ port: appPort, host: '127.0.0.1', localAddress: from });
  opened.push(socket);
  const start = Date.now();
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  // A reset (the server destroying a socket with unread bytes) is a close like any other here.
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => Date.now() - start);
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

/** Writes `text` one byte at a time, `everyMs` apart, until it is all sent or the socket closes. */
async function trickle(socket: Socket, text: string, everyMs: number): Promise<number> {
  let sent = 0;
  for (const ch of text) {
    if (socket.destroyed || socket.writableEnded) break;
    socket.write(ch);
    sent++;
    await sleep(everyMs);
  }
  return sent;
}

const BODY = JSON.stringify({ email: 'slow.sender@example.com' });
const HEAD = `POST /subscribe HTTP/1.1\r\nHost: broadside.test\r\nContent-Type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n`;

/** Expects the connection to have been closed `after` ms from opening, at `bound` seconds. */
function closedAt(after: number, bound: number, check = 0) {
  expect(after).toBeGreaterThanOrEqual(bound * 1000 - 100);
  expect(after).toBeLessThan(bound * 1000 + check + SLACK_MS);
}

const answer408 = (c: Raw) => {
  expect(c.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  expect(JSON.parse(c.received().split('\r\n\r\n')[1]!)).toEqual({ error: { code: 'request_timeout', message: 'the request did not arrive in time' } });
};

describe('slow requests', () => {
  it('cuts a body sent a byte at a time HTTP_BODY_TIMEOUT_SECONDS after its headers, with a 408 in our error shape', async () => {
    const c = await open(port);
    c.socket.write(HEAD);
    // A byte every 250 ms is never idle for long, and would take a minute for the whole body.
    const sent = trickle(c.socket, BODY, 250);
    closedAt(await c.closed, BODY_S);
    expect(await sent).toBeLessThan(BODY.length);
    answer408(c);
    const { rows } = await t.c.pool.query(`SELECT count(*)::int AS n FROM subscribers WHERE email_normalized = 'slow.sender@example.com'`);
    expect(rows[0].n).toBe(0);
  });

  it('cuts headers sent a byte at a time after HTTP_HEADERS_TIMEOUT_SECONDS', async () => {
    const c = await open(port);
    void trickle(c.socket, HEAD, 250);
    closedAt(await c.closed, HEADERS_S, CHECK_MS);
    answer408(c);
  });

  it('closes a request that stalls half-way after HTTP_IDLE_TIMEOUT_SECONDS without a byte', async () => {
    const c = await open(port);
    c.socket.write(HEAD + BODY.slice(0, 10));
    const after = await c.closed;
    closedAt(after, IDLE_S);
    // Before the body's bound could have ended it.
    expect(after).toBeLessThan(BODY_S * 1000);
  });

  it("cuts a stranger's slow upload after the body bound, though it was answered 401 at once", async () => {
    const c = await open(port);
    c.socket.write(`POST /api/subscribers/import HTTP/1.1\r\nHost: broadside.test\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\nemail\n`);
    void trickle(c.socket, 'x'.repeat(1000), 250);
    await until('the 401', () => c.received().startsWith('HTTP/1.1 401 '), 5000);
    closedAt(await c.closed, BODY_S);
  });

  it("takes the editor's CSV import arriving over longer than HTTP_BODY_TIMEOUT_SECONDS", async () => {
    // 30 chunks of 500 readers, one every 250 ms: a 7.5 s upload, as over a slow uplink.
    const CHUNKS = 30;
    const PER_CHUNK = 500;
    const began = Date.now();
    const { req, answer } = openRequest({
      port,
      path: '/api/subscribers/import',
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'text/csv', 'transfer-encoding': 'chunked' },
    });
    req.write('email,name\n');
    for (let i = 0; i < CHUNKS; i++) {
      let chunk = '';
      for (let j = 0; j < PER_CHUNK; j++) chunk += `paced${i * PER_CHUNK + j}@example.com,Paced Reader\n`;
      req.write(chunk);
      await sleep(250);
    }
    req.end();
    const res = await answer;
    expect(Date.now() - began).toBeGreaterThan(BODY_S * 1000);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ rows: CHUNKS * PER_CHUNK, accepted: CHUNKS * PER_CHUNK, rejected: 0 });
  });

  it("gives the editor's CSV import HTTP_UPLOAD_TIMEOUT_SECONDS instead, and no more", async () => {
    const c = await open(port);
    c.socket.write(
      `POST /api/subscribers/import HTTP/1.1\r\nHost: broadside.test\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\nemail\n`,
    );
    void trickle(c.socket, 'slow.importer@example.com\n'.repeat(100), 250);
    // Open well past BODY_S: closed at UPLOAD_S.
    closedAt(await c.closed, UPLOAD_S, CHECK_MS);
    answer408(c);
  });
});

describe('idle connections', () => {
  it('closes a kept-alive connection idle for HTTP_KEEP_ALIVE_TIMEOUT_SECONDS after its last answer', async () => {
    const c = await open(port);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: broadside.test\r\n\r\n');
    await until('the answer', () => c.received().includes('{"status":"ok"}'));
    const answeredAt = Date.now();
    await c.closed;
    const idle = Date.now() - answeredAt;
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*Keep-Alive: timeout=1\r\n/i);
    // Node closes a second after the time it announces, so a client that honours the header
    // never sends a request into a connection being closed.
    expect(idle).toBeGreaterThanOrEqual(KEEP_ALIVE_S * 1000 - 100);
    expect(idle).toBeLessThan(KEEP_ALIVE_S * 1000 + 1000 + SLACK_MS);
  });

  it('closes a connection that never sends a byte after HTTP_HEADERS_TIMEOUT_SECONDS', async () => {
    const c = await open(port);
    closedAt(await c.closed, HEADERS_S, CHECK_MS);
    answer408(c);
  });
});

describe('HTTP_MAX_CONNECTIONS_PER_IP', () => {
  const MAX = 4;
  const apps: FastifyInstance[] = [];
  /** Another API process over the same container, listening, with these settings. */
  async function listening(settings: Partial<typeof t.config>): Promise<number> {
    // Long timeouts here: the held connections must outlast the test, whatever the machine's load.
    const app = await buildApp({
      ...t.c,
      config: { ...t.c.config, httpHeadersTimeoutSeconds: 60, httpUploadTimeoutSeconds: 60, httpIdleTimeoutSeconds: 60, ...settings },
    });
    apps.push(app);
    await app.listen({ port: 0, host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }
  afterAll(async () => {
    for (const app of apps) await app.close();
  });

  /** Connections that hold a slot: a request line and no more. */
  const holding = async (appPort: number, from: string, n: number) => {
    const held = await Promise.all(Array.from({ length: n }, () => open(appPort, from)));
    for (const c of held) c.socket.write('GET /healthz HTTP/1.1\r\n');
    return held;
  };
  const isOpen = (c: Raw) => !c.socket.destroyed && !c.socket.readableEnded;
  const served = async (appPort: number, from: string) => {
    const c = await open(appPort, from);
    c.socket.end('GET /healthz HTTP/1.1\r\nHost: broadside.test\r\nConnection: close\r\n\r\n');
    await c.closed;
    return c.received().startsWith('HTTP/1.1 200 ');
  };

  it('holds one address to its cap however many connections it opens, and serves everybody else', async () => {
    const appPort = await listening({ httpMaxConnectionsPerIp: MAX });
    const held = await holding(appPort, '127.0.0.2', MAX);
    // The flood: every one of these is closed by the server at once, with no answer.
    const flood = await Promise.all(Array.from({ length: 40 }, () => open(appPort, '127.0.0.2')));
    const closedAfter = await Promise.all(flood.map((c) => c.closed));
    expect(Math.max(...closedAfter)).toBeLessThan(5000);
    expect(flood.every((c) => c.received() === '')).toBe(true);
    expect(held.every(isOpen)).toBe(true);

    expect(await served(appPort, '127.0.0.6')).toBe(true);
    const warnings = log.lines().filter((l) => l.msg?.startsWith('too many open connections from one address'));
    expect(warnings).toEqual([expect.objectContaining({ peer: '127.0.0.2', max: MAX })]);

    // A held connection finishes its request and is answered; once they have all gone, the
    // address is served again.
    held[0]!.socket.write('Host: broadside.test\r\n\r\n');
    await until('the held request to be answered', () => held[0]!.received().startsWith('HTTP/1.1 200 '));
    for (const c of held) c.socket.destroy();
    await until('the address to be served again', () => served(appPort, '127.0.0.2'), 10_000);
  });

  it('does not count the connections of a trusted proxy, which carry every reader', async () => {
    const appPort = await listening({ httpMaxConnectionsPerIp: MAX, trustProxy: { addresses: ['127.0.0.3'] } });
    const held = await holding(appPort, '127.0.0.3', MAX * 3);
    expect(await served(appPort, '127.0.0.3')).toBe(true);
    expect(held.every(isOpen)).toBe(true);
    // Any other peer is still capped.
    await holding(appPort, '127.0.0.7', MAX);
    const over = await open(appPort, '127.0.0.7');
    expect(await over.closed).toBeLessThan(5000);
    expect(over.received()).toBe('');
  });
});
