// What the operator's log says about a real send, and what it must never say (issue 6, item 6):
// the service's own logger options writing to a buffer, a worker in the process, a relay that
// wants a password and refuses some readers, and the editor's and the readers' requests.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import { censorSecretsInLine, loggerOptions, maskAddressesInLine, maskEmailsIn, maskUrl } from '../../src/log.js';
import { createTestContext, TEST_TOKEN, type TestContext } from '../support/context.js';
import { editor, until } from '../support/editor.js';
import { captureLog } from '../support/log-capture.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const SMTP_PASSWORD = 'relay-password-Xq7Zk2';

/** Readers of the send: one the relay takes, one it refuses for good, one it keeps deferring. */
const READERS = [
  { email: 'ok.reader@example.com', name: 'Zebulon Quargle' },
  { email: 'gone.reader@example.com', name: 'Philippa Thistlewood' },
  { email: 'busy.reader@example.com', name: 'Horatio Brambleby' },
];
const CSV_READER = { email: 'csv.reader@example.org', name: 'Ermintrude Pockets' };
const SIGNUP = { email: 'signup.person@example.net', name: 'Ottoline Fernsby' };
const TEST_COPY_TO = 'editor.self@example.com';
const ADDRESSES = [...READERS.map((r) => r.email), CSV_READER.email, SIGNUP.email, TEST_COPY_TO];
const NAMES = [...READERS.map((r) => r.name), CSV_READER.name, SIGNUP.name];

type Line = Record<string, unknown> & { level: number; msg?: string };

const { stream: sink, text, lines } = captureLog<Line>();
const withMsg = (msg: string) => lines().filter((l) => l.msg === msg);

/** A relay that wants a login, refuses gone.* for good and defers busy.* every time. */
class Relay {
  readonly received: string[] = [];
  private server!: SMTPServer;
  port = 0;

  async start(): Promise<void> {
    this.server = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      logger: false,
      onAuth: (auth, _session, cb) => {
        if (auth.username === 'relay-user' && auth.password === SMTP_PASSWORD) return cb(null, { user: auth.username });
        cb(new Error('Invalid username or password'));
      },
      onRcptTo: (address, _session, cb) => {
        const a = address.address;
        // Real relays quote the refused address in their reply, and the worker logs that reply.
        if (a.startsWith('gone.')) return cb(Object.assign(new Error(`5.1.1 <${a}>: Recipient address rejected: User unknown`), { responseCode: 550 }));
        if (a.startsWith('busy.')) return cb(Object.assign(new Error(`4.2.1 <${a}>: mailbox busy, try again later`), { responseCode: 451 }));
        cb();
      },
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          this.received.push(...session.envelope.rcptTo.map((r) => r.address));
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const relay = new Relay();
let t: TestContext;
let sendId = 0;
let issueId = 0;

beforeAll(async () => {
  await relay.start();
  t = await createTestContext({
    worker: true,
    logTo: sink,
    env: {
      LOG_LEVEL: 'info',
      SMTP_URL: `smtp://relay-user:${SMTP_PASSWORD}@127.0.0.1:${relay.port}`,
      DELIVERY_ATTEMPTS: '2',
      RETRY_DELAY_SECONDS: '1',
    },
  });
  const ed = editor(t);

  // A reader signs up (a confirmation goes out through the reader-mail queue).
  const signup = await t.app.inject({ method: 'POST', url: '/subscribe', payload: SIGNUP, headers: { accept: 'application/json' } });
  expect(signup.statusCode).toBe(202);
  await until('the confirmation at the relay', () => relay.received.includes(SIGNUP.email));

  // The editor adds readers one by one and by CSV, and looks one up by address.
  for (const r of READERS) {
    const res = await ed.api('POST', '/api/subscribers', r);
    expect([res.statusCode, res.body]).toEqual([201, expect.any(String)]);
  }
  const imported = await t.app.inject({
    method: 'POST',
    url: '/api/subscribers/import',
    headers: { ...t.auth, 'content-type': 'text/csv' },
    payload: `email,name\n${CSV_READER.email},${CSV_READER.name}\n`,
  });
  expect([imported.statusCode, imported.json()]).toEqual([200, expect.objectContaining({ accepted: 1 })]);
  const found = await ed.api('GET', `/api/subscribers?email=${encodeURIComponent(READERS[0]!.email)}`);
  expect(found.statusCode).toBe(200);
  const foundRaw = await ed.api('GET', `/api/subscribers?status=active&email=${READERS[1]!.email}`);
  expect(foundRaw.statusCode).toBe(200);

  // The send, and a test copy.
  const issue = await ed.createIssue('Logs: a real send');
  issueId = issue.id;
  sendId = (await ed.trigger(issue.id)).id;
  const test = await ed.api('POST', `/api/issues/${issue.id}/test`, { to: [TEST_COPY_TO] });
  expect(test.statusCode).toBe(200);
  const done = await ed.waitForStatus(issue.id, 'done', 30_000);
  expect(done).toMatchObject({ total: 4, submitted: 2, bounced: 1, failed: 1 });
  // The worker's last lines ("fan-out job ended") follow the send's end.
  await until('the fan-out job to end', () => withMsg('fan-out job ended').length > 0);
}, 60_000);

afterAll(async () => {
  await t?.close();
  await relay.stop();
});

describe('logs of a real send', () => {
  it('are JSON lines, one object each', () => {
    expect(lines().length).toBeGreaterThan(20);
    expect(lines().every((l) => typeof l.level === 'number' && typeof l.msg === 'string')).toBe(true);
  });

  it('name the job, its queue, the message and the send on every delivery line', () => {
    const bounce = withMsg('hard bounce at submission: reader suppressed');
    const retry = withMsg('temporary SMTP failure: will retry');
    const failed = withMsg('message failed after its last retry');
    expect([bounce.length, retry.length, failed.length]).toEqual([1, 1, 1]);
    for (const line of [...bounce, ...retry, ...failed]) {
      expect(line).toMatchObject({ queue: 'deliver', jobId: expect.any(String), messageId: expect.any(Number), sendId });
    }
    // Each line names its own message: the bounced one is not the deferred one.
    expect(bounce[0]!.messageId).not.toBe(failed[0]!.messageId);
    expect(retry[0]!.messageId).toBe(failed[0]!.messageId);
    // The job id a line names is the job that worked on that message.
    expect(String(failed[0]!.jobId)).toContain(String(failed[0]!.messageId));
  });

  it('name the job and the queue on every fan-out line, and the send', () => {
    const fanout = lines().filter((l) => ['fan-out complete: every reader of the audience has a message', 'send done', 'fan-out job ended'].includes(l.msg!));
    expect(fanout.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['fan-out complete: every reader of the audience has a message', 'send done', 'fan-out job ended']),
    );
    for (const line of fanout) expect(line).toMatchObject({ queue: 'send-fanout', jobId: expect.any(String), sendId });
    expect(withMsg('send done')[0]).toMatchObject({ issueId });
  });

  it('name the job and the queue on every reader-mail line', () => {
    const mail = withMsg('reader mail');
    expect(mail.length).toBeGreaterThanOrEqual(1);
    for (const line of mail)
      expect(line).toMatchObject({ queue: 'reader-mail', jobId: expect.any(String), kind: 'confirmation', subscriberId: expect.any(Number) });
  });

  it('carry the request id on every line about a request, and the same id from start to end of one', () => {
    const aboutRequests = lines().filter(
      (l) => 'req' in l || 'res' in l || ['sign-up: confirmation queued', 'CSV import', 'issue created', 'client error'].includes(l.msg!),
    );
    expect(aboutRequests.length).toBeGreaterThan(10);
    for (const line of aboutRequests) expect(line.reqId).toEqual(expect.any(String));
    const signup = withMsg('sign-up: confirmation queued')[0]!;
    const sameRequest = lines()
      .filter((l) => l.reqId === signup.reqId)
      .map((l) => l.msg);
    expect(sameRequest).toEqual(['sign-up: confirmation queued', 'request completed']);
  });

  it("write the send trigger's and the test copy's lines", () => {
    expect([withMsg('send triggered').length, withMsg('test copies sent').length]).toEqual([1, 1]);
  });
  it('carry the request id on the lines the send trigger and the test copy write', () => {
    expect(withMsg('send triggered')[0]!.reqId).toEqual(expect.any(String));
    expect(withMsg('test copies sent')[0]!.reqId).toEqual(expect.any(String));
  });

  it("never show a reader's whole address or name at info level, even inside an SMTP reply", () => {
    const log = text();
    for (const address of ADDRESSES) expect(log).not.toContain(address);
    // %-escaped in a query string, as the editor's search sends it.
    for (const address of ADDRESSES) expect(log).not.toContain(encodeURIComponent(address));
    for (const name of NAMES) expect(log).not.toContain(name);
    // The refused reader's address is still recognisable in the relay's reply.
    const bounce = withMsg('hard bounce at submission: reader suppressed')[0]!;
    expect(bounce.response).toContain('<g***@example.com>');
    expect(withMsg('temporary SMTP failure: will retry')[0]!.response).toContain('<b***@example.com>');
    expect(log).toContain('s***@example.net');
  });

  it('never contain the editor token, SECRET or the relay password', () => {
    const log = text();
    expect(log).not.toContain(TEST_TOKEN);
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(SMTP_PASSWORD);
  });
});

describe('masking', () => {
  it('masks addresses in free text and leaves other @s alone', () => {
    expect(maskEmailsIn('550 5.1.1 <jane.doe@example.com>: unknown, cc bob@ex-ample.co.uk')).toBe(
      '550 5.1.1 <j***@example.com>: unknown, cc b***@ex-ample.co.uk',
    );
    expect(maskEmailsIn('to josé@bücher.de, jose@xn--bcher-kva.de')).toBe('to j***@bücher.de, j***@xn--bcher-kva.de');
    expect(maskEmailsIn('@fastify/rate-limit and user@localhost')).toBe('@fastify/rate-limit and user@localhost');
    expect(maskEmailsIn('already j***@example.com')).toBe('already j***@example.com');
  });

  it('masks addresses in a query string, spelled out or %-escaped', () => {
    expect(maskUrl('/api/subscribers?email=jane')).toBe('/api/subscribers?email=…');
    expect(maskUrl('/api/subscribers?status=active&email=jane%40example.com&limit=5')).toBe('/api/subscribers?status=active&email=…&limit=5');
    expect(maskUrl('/x?q=jane@example.com')).toBe('/x?q=…');
    expect(maskUrl('/issues/a-slug?utm=news')).toBe('/issues/a-slug?utm=news');
  });

  it('masks whole lines at info and above, leaves debug lines whole, and keeps lines valid JSON', () => {
    const info = maskAddressesInLine('{"level":30,"time":1,"err":{"message":"no \\"jane@example.com\\"\\njane@example.com"},"msg":"x"}\n');
    expect(info.endsWith('\n')).toBe(true);
    expect(JSON.parse(info)).toEqual({ level: 30, time: 1, err: { message: 'no "j***@example.com"\nj***@example.com' }, msg: 'x' });
    const debug = '{"level":20,"time":1,"to":"jane@example.com","msg":"x"}\n';
    expect(maskAddressesInLine(debug)).toBe(debug);
  });

  it('applies to a logger built with the service options, at its levels', () => {
    const out = captureLog<Line>();
    const log = pino(loggerOptions('debug'), out.stream);
    log.child({ jobId: 'j1' }).warn({ response: '550 <jane@example.com> unknown' }, 'refused');
    log.debug({ to: 'jane@example.com' }, 'debugging one reader');
    log.info(new Error('cannot reach jane@example.com'));
    const [warn, debug, info] = out.lines();
    expect(warn).toMatchObject({ jobId: 'j1', response: '550 <j***@example.com> unknown', msg: 'refused' });
    expect(debug).toMatchObject({ to: 'jane@example.com' });
    expect(info).toMatchObject({ msg: 'cannot reach j***@example.com', err: { message: 'cannot reach j***@example.com' } });
    expect(JSON.stringify(info)).not.toContain('jane@');
  });

  it('censors passwords, tokens, secrets, authorization and cookies at any depth and every level, in bindings too', () => {
    const out = captureLog<Line>();
    const log = pino(loggerOptions('debug'), out.stream);
    log.info({ smtp: { user: 'u', password: 'pw-1' }, config: { apiToken: 'tok-2', secret: 'sec-3', port: 25 } }, 'settings');
    log.debug({ upstream: { headers: { authorization: 'Bearer tok-4', cookie: 'sid=5', accept: 'text/html' } } }, 'headers');
    log.child({ auth: { password: 'pw-6' } }).warn({ deep: [{ a: { secret: { b: 'sec-7' } } }] }, 'nested');
    log.info({ password: 'pw-8', to: 'jane@example.com' }, 'top level, with an address');
    const text = out.text();
    for (const secret of ['pw-1', 'tok-2', 'sec-3', 'tok-4', 'sid=5', 'pw-6', 'sec-7', 'pw-8']) expect(text).not.toContain(secret);
    const [settings, headers, nested, top] = out.lines();
    expect(settings).toMatchObject({ smtp: { user: 'u', password: '[redacted]' }, config: { apiToken: '[redacted]', secret: '[redacted]', port: 25 } });
    expect(headers).toMatchObject({ upstream: { headers: { authorization: '[redacted]', cookie: '[redacted]', accept: 'text/html' } } });
    expect(nested).toMatchObject({ auth: { password: '[redacted]' }, deep: [{ a: { secret: '[redacted]' } }], msg: 'nested' });
    expect(top).toMatchObject({ password: '[redacted]', to: 'j***@example.com' });
  });

  it('censors secrets in text that is not one JSON object, and leaves lines without them as they are', () => {
    expect(censorSecretsInLine('{"password":"a\\"b","n":1} {"secret":42}\n')).toBe('{"password":"[redacted]","n":1} {"secret":"[redacted]"}\n');
    const plain = '{"level":30,"msg":"the password field is required"}\n';
    expect(censorSecretsInLine(plain)).toBe(plain);
  });

  it("writes JSON lines itself: no transport (pino-pretty is createLogger's, for a terminal only)", () => {
    expect(loggerOptions('info').transport).toBeUndefined();
  });
});
