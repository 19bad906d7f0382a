import { createHmac } from 'node:crypto';
import { createMailgunWebhook } from '../../../src/bounces/providers/mailgun.js';

const TOKEN = 'm2n-0123456789abcdef';
const KEY = 'key-test-signing-0123456789';
const NOW = new Date('2026-11-24T12:00:00Z');
const TS = String(NOW.getTime() / 1000);
const mg = createMailgunWebhook({ signingKey: KEY, now: () => NOW });

function signature(timestamp = TS, token = 'a'.repeat(50), key = KEY) {
  return {
    timestamp,
    token,
    signature: createHmac('sha256', key)
      .update(timestamp + token)
      .digest('hex'),
  };
}

// Shaped like Mailgun's documented "failed" webhook example.
const failed = {
  id: 'G9Bn5sl1TC6nu79C8C0bwg',
  timestamp: 1795003000.123,
  'log-level': 'error',
  event: 'failed',
  severity: 'permanent',
  reason: 'suppress-bounce',
  recipient: 'Jane@Example.com',
  'recipient-domain': 'example.com',
  envelope: { sender: 'bounces@mg.example.net', transport: 'smtp', targets: 'jane@example.com' },
  'delivery-status': {
    code: 550,
    'enhanced-code': '5.1.1',
    message: '5.1.1 The email account that you tried to reach does not exist',
    description: '',
    'attempt-no': 1,
  },
  message: { headers: { to: 'jane@example.com', 'message-id': '20261124.1@mg.example.net', from: 'news@example.net', subject: 'Issue 42' }, size: 111 },
  'user-variables': { broadside_message: TOKEN },
};
const complained = {
  id: '-Agny091SquKnsrW2NEKUA',
  timestamp: 1795003000,
  event: 'complained',
  recipient: 'rick@example.org',
  message: { headers: { 'message-id': '20261124.2@mg.example.net', 'x-broadside-message': TOKEN } },
};
const body = (eventData: unknown, sig: unknown = signature()) => JSON.stringify({ signature: sig, 'event-data': eventData });

describe('Mailgun', () => {
  it('maps a permanent failure to a hard event', () => {
    const r = mg.verify(Buffer.from(body(failed)));
    expect(r).toEqual({
      ok: true,
      signatureToken: 'a'.repeat(50),
      events: [
        {
          provider: 'mailgun',
          eventId: 'G9Bn5sl1TC6nu79C8C0bwg',
          type: 'hard',
          recipient: 'jane@example.com',
          messageToken: TOKEN,
          providerMessageId: '20261124.1@mg.example.net',
          status: '5.1.1',
          diagnostic: '5.1.1 The email account that you tried to reach does not exist',
          occurredAt: new Date(1795003000123),
        },
      ],
    });
  });

  it('maps a temporary failure to soft and a complaint (token in message headers) to complaint', () => {
    const soft = mg.verify(body({ ...failed, severity: 'temporary' }));
    expect(soft.ok && soft.events[0]!.type).toBe('soft');
    const c = mg.verify(body(complained));
    expect(c.ok && c.events).toEqual([
      expect.objectContaining({ eventId: '-Agny091SquKnsrW2NEKUA', type: 'complaint', recipient: 'rick@example.org', messageToken: TOKEN }),
    ]);
  });

  it('returns no events for other event types', () => {
    expect(mg.verify(body({ id: 'x', event: 'delivered', recipient: 'a@b.c' }))).toMatchObject({ ok: true, events: [] });
  });

  it('refuses a tampered signature, a wrong key and a missing signature', () => {
    const sig = signature();
    expect(mg.verify(body(failed, { ...sig, token: 'b'.repeat(50) }))).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(mg.verify(body(failed, signature(TS, 'a'.repeat(50), 'another-key')))).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(mg.verify(body(failed, { ...sig, signature: 'zz' }))).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(mg.verify(JSON.stringify({ 'event-data': failed }))).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(mg.verify(body(failed, { timestamp: TS, token: 'a' }))).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it('refuses a stale timestamp, within a configurable tolerance', () => {
    const old = signature(String(Number(TS) - 301));
    expect(mg.verify(body(failed, old))).toMatchObject({ ok: false, reason: 'unauthorized', message: expect.stringMatching(/stale/) });
    expect(createMailgunWebhook({ signingKey: KEY, now: () => NOW, toleranceSeconds: 600 }).verify(body(failed, old))).toMatchObject({ ok: true });
  });

  it('calls malformed bodies malformed', () => {
    expect(mg.verify('{"signature":')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(mg.verify('"just a string"')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(mg.verify(JSON.stringify({ signature: signature() }))).toMatchObject({ ok: false, reason: 'malformed' });
    const { id: _, ...noId } = failed;
    expect(mg.verify(body(noId))).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
