import { createSign, generateKeyPairSync } from 'node:crypto';
import { createSendgridWebhook } from '../../../src/bounces/providers/sendgrid.js';

const TOKEN = 'm2n-0123456789abcdef';
const NOW = new Date('2026-11-24T12:00:00Z');
const TS = String(NOW.getTime() / 1000);

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKey = keys.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const sg = createSendgridWebhook({ publicKey, now: () => NOW });

function signed(body: string, timestamp = TS, privateKey = keys.privateKey) {
  const signature = createSign('sha256')
    .update(timestamp + body)
    .sign(privateKey, 'base64');
  return {
    'x-twilio-email-event-webhook-signature': signature,
    'x-twilio-email-event-webhook-timestamp': timestamp,
  };
}

// Shaped like SendGrid's documented Event Webhook examples, with a custom arg carrying our token.
const base = { timestamp: 1795003000, 'smtp-id': '<14c5d75ce93.dfd.64b469@ismtpd-555>', sg_message_id: 'sg-msg-1', broadside_message: TOKEN };
const events = [
  { ...base, email: 'example@test.com', event: 'processed', sg_event_id: 'ev-0' },
  {
    ...base,
    email: 'Jane@Example.com',
    event: 'bounce',
    type: 'bounce',
    status: '5.1.1',
    reason: '550 5.1.1 The email account does not exist',
    sg_event_id: 'ev-1',
    bounce_classification: 'Invalid Address',
  },
  { ...base, email: 'b@example.com', event: 'bounce', type: 'blocked', status: '4.0.0', reason: '421 try later', sg_event_id: 'ev-2' },
  { ...base, email: 'c@example.com', event: 'deferred', response: '400 try again later', attempt: '5', sg_event_id: 'ev-3' },
  { ...base, email: 'd@example.com', event: 'dropped', reason: 'Bounced Address', status: '5.0.0', sg_event_id: 'ev-4' },
  {
    timestamp: 1795003000,
    email: 'e@example.com',
    event: 'spamreport',
    sg_event_id: 'ev-5',
    sg_message_id: 'sg-msg-2',
    unique_args: { broadside_message: TOKEN },
  },
  { ...base, email: 'f@example.com', event: 'open', sg_event_id: 'ev-6' },
];

describe('SendGrid', () => {
  it('maps a signed batch', () => {
    const body = JSON.stringify(events);
    const r = sg.verify(Buffer.from(body), signed(body));
    if (!r.ok) throw new Error(r.message);
    expect(r.ignored).toBe(0);
    expect(r.events.map((e) => [e.eventId, e.type, e.recipient, e.messageToken])).toEqual([
      ['ev-1', 'hard', 'jane@example.com', TOKEN],
      ['ev-2', 'soft', 'b@example.com', TOKEN],
      ['ev-3', 'soft', 'c@example.com', TOKEN],
      ['ev-4', 'other', 'd@example.com', TOKEN],
      ['ev-5', 'complaint', 'e@example.com', TOKEN],
    ]);
    expect(r.events[0]).toEqual({
      provider: 'sendgrid',
      eventId: 'ev-1',
      type: 'hard',
      recipient: 'jane@example.com',
      messageToken: TOKEN,
      providerMessageId: 'sg-msg-1',
      status: '5.1.1',
      diagnostic: '550 5.1.1 The email account does not exist',
      occurredAt: new Date(1795003000 * 1000),
    });
  });

  it('accepts the key as PEM too', () => {
    const pem = keys.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const body = JSON.stringify(events.slice(1, 2));
    expect(createSendgridWebhook({ publicKey: pem, now: () => NOW }).verify(body, signed(body))).toMatchObject({ ok: true });
  });

  it('skips events of a bounce kind without sg_event_id or email, and counts them', () => {
    const body = JSON.stringify([{ event: 'bounce', email: 'a@b.c' }, { event: 'spamreport', sg_event_id: 'x' }, events[1]]);
    expect(sg.verify(body, signed(body))).toMatchObject({ ok: true, ignored: 2, events: [{ eventId: 'ev-1' }] });
  });

  it('refuses a tampered body', () => {
    const body = JSON.stringify(events);
    const headers = signed(body);
    expect(sg.verify(body.replace('Jane@Example.com', 'jake@example.com'), headers)).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it('refuses a signature by another key, or over another timestamp', () => {
    const body = JSON.stringify(events);
    expect(sg.verify(body, signed(body, TS, other.privateKey))).toMatchObject({ ok: false, reason: 'unauthorized' });
    const h = signed(body);
    h['x-twilio-email-event-webhook-timestamp'] = String(Number(TS) + 1);
    expect(sg.verify(body, h)).toMatchObject({ ok: false, reason: 'unauthorized', message: expect.stringMatching(/signature/) });
  });

  it('refuses missing headers and garbage signatures', () => {
    const body = JSON.stringify(events);
    const h = signed(body);
    expect(sg.verify(body, {})).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(sg.verify(body, { 'x-twilio-email-event-webhook-signature': h['x-twilio-email-event-webhook-signature'] })).toMatchObject({
      ok: false,
      reason: 'unauthorized',
    });
    expect(sg.verify(body, { ...h, 'x-twilio-email-event-webhook-signature': 'AAAA' })).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(sg.verify(body, { ...h, 'x-twilio-email-event-webhook-timestamp': 'yesterday' })).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it('refuses a stale timestamp even when correctly signed, within a configurable tolerance', () => {
    const body = JSON.stringify(events);
    const old = String(Number(TS) - 301);
    expect(sg.verify(body, signed(body, old))).toMatchObject({ ok: false, reason: 'unauthorized', message: expect.stringMatching(/stale/) });
    const lenient = createSendgridWebhook({ publicKey, now: () => NOW, toleranceSeconds: 600 });
    expect(lenient.verify(body, signed(body, old))).toMatchObject({ ok: true });
  });

  it('calls a signed body that is not a JSON array of objects malformed', () => {
    for (const body of ['[{"event":', '{"event":"bounce"}', '[1]']) {
      expect(sg.verify(body, signed(body))).toMatchObject({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses to be built with a key that is not an EC public key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    expect(() => createSendgridWebhook({ publicKey: rsa })).toThrow();
    expect(() => createSendgridWebhook({ publicKey: 'bm90IGEga2V5' })).toThrow();
  });
});
