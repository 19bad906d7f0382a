import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { classifySmtpError, type SmtpFailure } from '../../src/delivery/classify-smtp-error.js';

/** An error shaped as nodemailer shapes them. */
function smtpError(message: string, fields: { code?: string; responseCode?: number; response?: string; command?: string }): Error {
  return Object.assign(new Error(message), fields);
}

type Case = [name: string, err: unknown, expected: Partial<SmtpFailure>];

const cases: Case[] = [
  [
    'connection refused (no reply at all)',
    smtpError('connect ECONNREFUSED 127.0.0.1:25', { code: 'ESOCKET', command: 'CONN' }),
    { kind: 'relay', code: undefined },
  ],
  ['a bare ECONNREFUSED', smtpError('connect ECONNREFUSED 10.0.0.1:587', { code: 'ECONNREFUSED' }), { kind: 'relay', code: undefined }],
  ['connection timed out', smtpError('Connection timeout', { code: 'ETIMEDOUT', command: 'CONN' }), { kind: 'relay', code: undefined }],
  ['a greeting timeout', smtpError('Greeting never received', { code: 'ETIMEDOUT', command: 'CONN' }), { kind: 'relay' }],
  ['not an Error at all', 'socket hang up', { kind: 'relay', response: 'socket hang up' }],
  [
    'a connection dropped after DATA (no reply)',
    smtpError('Connection closed unexpectedly', { code: 'ECONNECTION', command: 'CONN' }),
    { kind: 'relay', code: undefined },
  ],
  [
    '421 at RCPT TO (service closing)',
    smtpError('Recipient command failed', { code: 'EENVELOPE', responseCode: 421, response: '421 4.3.2 Service shutting down', command: 'RCPT TO' }),
    { kind: 'throttled', code: 421, enhanced: '4.3.2' },
  ],
  [
    '421 at RCPT TO, reported as the server closing the connection',
    smtpError('Server closed the connection', {
      code: 'ECONNECTION',
      responseCode: 421,
      response: '421 4.7.0 Try again later, closing connection',
      command: 'CONN',
    }),
    { kind: 'throttled', code: 421, enhanced: '4.7.0' },
  ],
  [
    '421 at MAIL FROM',
    smtpError('Mail command failed', { code: 'EENVELOPE', responseCode: 421, response: '421 4.7.0 Try again later', command: 'MAIL FROM' }),
    { kind: 'throttled', code: 421 },
  ],
  [
    '451 at MAIL FROM (a 4xx about our sender)',
    smtpError('Mail command failed', { code: 'EENVELOPE', responseCode: 451, response: '451 4.7.1 Sending rate exceeded', command: 'MAIL FROM' }),
    { kind: 'throttled', code: 451, enhanced: '4.7.1' },
  ],
  [
    '421 after DATA',
    smtpError('Message failed', { code: 'EMESSAGE', responseCode: 421, response: '421 4.4.2 Try again later', command: 'DATA' }),
    { kind: 'throttled', code: 421 },
  ],
  [
    '454 throttling after DATA (Amazon SES)',
    smtpError('Message failed', { code: 'EMESSAGE', responseCode: 454, response: '454 Throttling failure: Maximum sending rate exceeded.', command: 'DATA' }),
    { kind: 'throttled', code: 454 },
  ],
  [
    '421 greeting',
    smtpError('Invalid greeting', { code: 'EPROTOCOL', responseCode: 421, response: '421 too many connections', command: 'CONN' }),
    { kind: 'relay', code: 421 },
  ],
  [
    '554 greeting',
    smtpError('Invalid greeting', { code: 'EPROTOCOL', responseCode: 554, response: '554 no service for you', command: 'CONN' }),
    { kind: 'relay', code: 554 },
  ],
  [
    '421 at EHLO',
    smtpError('Server terminates connection', { code: 'ECONNECTION', responseCode: 421, response: '421 closing', command: 'EHLO' }),
    { kind: 'relay', code: 421 },
  ],
  [
    '450 4.2.0 greylisted at RCPT TO ("try again later" about this recipient)',
    smtpError('Recipient command failed', {
      code: 'EENVELOPE',
      responseCode: 450,
      response: '450 4.2.0 Greylisted, please try again later',
      command: 'RCPT TO',
    }),
    { kind: 'temporary', code: 450, enhanced: '4.2.0' },
  ],
  [
    '550 5.1.1 at RCPT TO',
    smtpError("Can't send mail - all recipients were rejected", {
      code: 'EENVELOPE',
      responseCode: 550,
      response: '550 5.1.1 <x@example.com>: no such user',
      command: 'RCPT TO',
    }),
    { kind: 'permanent', code: 550, enhanced: '5.1.1', response: '550 5.1.1 <x@example.com>: no such user' },
  ],
  [
    '550 at RCPT TO without an enhanced code',
    smtpError('Recipient command failed', { code: 'EENVELOPE', responseCode: 550, response: '550 mailbox unavailable', command: 'RCPT TO' }),
    { kind: 'permanent', code: 550, enhanced: undefined },
  ],
  [
    '452 4.2.2 at RCPT TO (mailbox full)',
    smtpError("Can't send mail - all recipients were rejected", {
      code: 'EENVELOPE',
      responseCode: 452,
      response: '452 4.2.2 mailbox full',
      command: 'RCPT TO',
    }),
    { kind: 'temporary', code: 452, enhanced: '4.2.2' },
  ],
  [
    '451 4.7.1 greylisted at RCPT TO',
    smtpError('Recipient command failed', { code: 'EENVELOPE', responseCode: 451, response: '451 4.7.1 greylisted, try again', command: 'RCPT TO' }),
    { kind: 'temporary', code: 451, enhanced: '4.7.1' },
  ],
  [
    '554 5.7.1 at DATA (EMESSAGE)',
    smtpError('Message failed', { code: 'EMESSAGE', responseCode: 554, response: '554 5.7.1 message rejected as spam', command: 'DATA' }),
    { kind: 'permanent', code: 554, enhanced: '5.7.1' },
  ],
  [
    '552 at DATA without an enhanced code',
    smtpError('Message failed', { code: 'EMESSAGE', responseCode: 552, response: '552 message too big', command: 'DATA' }),
    { kind: 'permanent', code: 552 },
  ],
  [
    '451 at DATA (local error)',
    smtpError('Message failed', { code: 'EMESSAGE', responseCode: 451, response: '451 4.3.0 local error in processing', command: 'DATA' }),
    { kind: 'temporary', code: 451, enhanced: '4.3.0' },
  ],
  [
    '535 auth failure',
    smtpError('Invalid login', { code: 'EAUTH', responseCode: 535, response: '535 5.7.8 authentication failed', command: 'AUTH PLAIN' }),
    { kind: 'relay', code: 535, enhanced: '5.7.8' },
  ],
  [
    '530 authentication required at MAIL FROM (no EENVELOPE)',
    smtpError('Mail command failed', { responseCode: 530, response: '530 5.7.0 authentication required', command: 'MAIL FROM' }),
    { kind: 'relay', code: 530 },
  ],
  [
    'a 5xx reply whose enhanced code is 4.x.x',
    smtpError('Recipient command failed', { code: 'EENVELOPE', responseCode: 550, response: '550 4.2.1 mailbox temporarily disabled', command: 'RCPT TO' }),
    { kind: 'temporary', code: 550, enhanced: '4.2.1' },
  ],
  [
    'a multi-line reply keeps the first enhanced code',
    smtpError('Message failed', {
      code: 'EMESSAGE',
      responseCode: 550,
      response: '550-5.7.26 unauthenticated mail\n550 5.7.26 see https://support.example/dmarc',
      command: 'DATA',
    }),
    { kind: 'permanent', enhanced: '5.7.26' },
  ],
];

describe('classifySmtpError', () => {
  it.each(cases)('%s', (_name, err, expected) => {
    expect(classifySmtpError(err)).toMatchObject(expected);
  });

  it('keeps the reply (or the message when there is none), cut to 1000 characters', () => {
    expect(
      classifySmtpError(smtpError('x', { code: 'EENVELOPE', responseCode: 550, response: `550 5.1.1 ${'y'.repeat(5000)}`, command: 'RCPT TO' })).response,
    ).toHaveLength(1000);
    expect(classifySmtpError(smtpError('connect ETIMEDOUT', { code: 'ETIMEDOUT' })).response).toBe('connect ETIMEDOUT');
  });

  it("550 at MAIL FROM (our sender refused) is the relay's problem, not a hard bounce", () => {
    const err = smtpError('Mail command failed: 550 5.7.1 sender rejected', {
      code: 'EENVELOPE',
      responseCode: 550,
      response: '550 5.7.1 sender rejected',
      command: 'MAIL FROM',
    });
    expect(classifySmtpError(err)).toMatchObject({ kind: 'relay', code: 550, enhanced: '5.7.1' });
  });
});

describe('classifySmtpError on the errors nodemailer really raises', () => {
  // A relay whose answers depend on the addresses: the errors are nodemailer's own.
  let relay: SMTPServer;
  let port: number;
  const reject = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

  // The connections the relay has open, to drop one as a relay that dies mid-message does.
  const sockets = new Map<string, Socket>();

  beforeAll(async () => {
    relay = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onConnect: (session, cb) => {
        const socket = [...(relay as unknown as { connections: Set<{ id: string; _socket: Socket }> }).connections].find((c) => c.id === session.id)?._socket;
        if (socket) sockets.set(session.id, socket);
        cb();
      },
      onAuth: (_auth, _session, cb) => cb(reject(535, '5.7.8 authentication failed')),
      onMailFrom: (address, _session, cb) => {
        const local = address.address.split('@')[0];
        if (local === 'refused') return cb(reject(550, '5.7.1 sender rejected'));
        if (local === 'paced') return cb(reject(421, '4.7.0 Try again later, closing connection'));
        if (local === 'slow') return cb(reject(451, '4.7.1 Sending rate exceeded, slow down'));
        cb();
      },
      onRcptTo: (address, _session, cb) => {
        const local = address.address.split('@')[0];
        if (local === 'nouser') return cb(reject(550, '5.1.1 no such user'));
        if (local === 'full') return cb(reject(452, '4.2.2 mailbox full'));
        if (local === 'busy') return cb(reject(421, '4.7.0 Try again later, closing connection'));
        cb();
      },
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          const local = session.envelope.rcptTo[0]?.address.split('@')[0];
          if (local === 'spam') return cb(reject(554, '5.7.1 message rejected as spam'));
          if (local === 'later') return cb(reject(421, '4.7.0 Try again later, closing connection'));
          if (local === 'ses') return cb(reject(454, 'Throttling failure: Maximum sending rate exceeded.'));
          // The data is in, and the relay goes away without a word.
          if (local === 'drop') return sockets.get(session.id)?.destroy();
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    port = (relay.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => relay.close(() => resolve()));
  });

  async function failureOf(from: string, to: string, opts: { auth?: boolean; port?: number } = {}): Promise<SmtpFailure> {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: opts.port ?? port,
      secure: false,
      ignoreTLS: true,
      connectionTimeout: 2000,
      ...(opts.auth ? { auth: { user: 'u', pass: 'p' } } : {}),
    });
    try {
      await transport.sendMail({ envelope: { from, to }, raw: 'Subject: x\r\n\r\nhello\r\n' });
    } catch (err) {
      return classifySmtpError(err);
    } finally {
      transport.close();
    }
    throw new Error('the relay accepted the message');
  }

  it('550 5.1.1 at RCPT TO: permanent', async () => {
    expect(await failureOf('news@example.com', 'nouser@example.com')).toEqual({
      kind: 'permanent',
      code: 550,
      enhanced: '5.1.1',
      response: '550 5.1.1 no such user',
    });
  });

  it('452 4.2.2 at RCPT TO: temporary', async () => {
    expect(await failureOf('news@example.com', 'full@example.com')).toMatchObject({ kind: 'temporary', code: 452, enhanced: '4.2.2' });
  });

  it('554 5.7.1 after DATA: permanent', async () => {
    expect(await failureOf('news@example.com', 'spam@example.com')).toMatchObject({ kind: 'permanent', code: 554, enhanced: '5.7.1' });
  });

  it('535 at AUTH: relay', async () => {
    expect(await failureOf('news@example.com', 'ok@example.com', { auth: true })).toMatchObject({ kind: 'relay', code: 535 });
  });

  it('nobody listening: relay', async () => {
    const gone = new SMTPServer({ logger: false, disabledCommands: ['STARTTLS'] });
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const deadPort = (gone.server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    expect(await failureOf('news@example.com', 'ok@example.com', { port: deadPort })).toMatchObject({ kind: 'relay', code: undefined });
  });

  it('550 at MAIL FROM: relay', async () => {
    expect(await failureOf('refused@example.com', 'ok@example.com')).toMatchObject({ kind: 'relay', code: 550 });
  });

  it('421 at MAIL FROM: throttled', async () => {
    expect(await failureOf('paced@example.com', 'ok@example.com')).toMatchObject({ kind: 'throttled', code: 421 });
  });

  it('451 at MAIL FROM: throttled', async () => {
    expect(await failureOf('slow@example.com', 'ok@example.com')).toMatchObject({ kind: 'throttled', code: 451 });
  });

  it('421 at RCPT TO (the server closes the connection): throttled', async () => {
    expect(await failureOf('news@example.com', 'busy@example.com')).toMatchObject({ kind: 'throttled', code: 421 });
  });

  it('421 after DATA: throttled', async () => {
    expect(await failureOf('news@example.com', 'later@example.com')).toMatchObject({ kind: 'throttled', code: 421 });
  });

  it('454 "Throttling failure" after DATA: throttled', async () => {
    expect(await failureOf('news@example.com', 'ses@example.com')).toMatchObject({ kind: 'throttled', code: 454 });
  });

  it('the connection dropped once the data is in: relay', async () => {
    expect(await failureOf('news@example.com', 'drop@example.com')).toMatchObject({ kind: 'relay', code: undefined });
  });

  it('421 greeting (too many connections): relay', async () => {
    const busy = new SMTPServer({ logger: false, disabledCommands: ['STARTTLS'], onConnect: (_s, cb) => cb(reject(421, 'too many connections')) });
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      expect(await failureOf('news@example.com', 'ok@example.com', { port: (busy.server.address() as AddressInfo).port })).toMatchObject({
        kind: 'relay',
        code: 421,
      });
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });
});
