import { createSign } from 'node:crypto';
import { createSesWebhook } from '../../../src/bounces/providers/ses.js';
import { selfSignedCertificate } from '../../support/certificates.js';

// A throw-away self-signed certificate stands in for SNS's; the fetcher is a stub that records
// which URLs it was asked for, so the tests can prove foreign hosts are never fetched.
let certPem: string;
let keyPem: string;
let otherKeyPem: string;

beforeAll(() => {
  ({ certPem, keyPem } = selfSignedCertificate('sns.amazonaws.com'));
  otherKeyPem = selfSignedCertificate('sns.amazonaws.com').keyPem;
});

const CERT_URL = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc123.pem';
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:broadside-bounces';
const TOKEN = 'm2n-0123456789abcdef';

function fetcher() {
  const calls: string[] = [];
  const fetchCertificate = async (url: string) => {
    calls.push(url);
    return certPem;
  };
  return { calls, fetchCertificate };
}

// Written from SNS's documentation of the string to sign, independently of src/.
function sign(msg: Record<string, string>, key = keyPem): Record<string, string> {
  const fields =
    msg.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const text = fields
    .filter((f) => msg[f] !== undefined)
    .map((f) => `${f}\n${msg[f]}\n`)
    .join('');
  const algorithm = msg.SignatureVersion === '1' ? 'RSA-SHA1' : 'RSA-SHA256';
  return { ...msg, Signature: createSign(algorithm).update(text).sign(key, 'base64') };
}

function notification(inner: unknown, extra: Record<string, string> = {}): Record<string, string> {
  return sign({
    Type: 'Notification',
    MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
    TopicArn: TOPIC,
    Message: JSON.stringify(inner),
    Timestamp: '2026-11-24T10:00:00.000Z',
    SignatureVersion: '2',
    SigningCertURL: CERT_URL,
    UnsubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x',
    ...extra,
  });
}

const bounce = {
  notificationType: 'Bounce',
  bounce: {
    bounceType: 'Permanent',
    bounceSubType: 'General',
    bouncedRecipients: [
      { emailAddress: 'Jane@Example.com', action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' },
      { emailAddress: 'rick@example.org', action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 no such user' },
    ],
    timestamp: '2026-11-24T09:59:58.000Z',
    feedbackId: '0100017f-feedback',
  },
  mail: {
    timestamp: '2026-11-24T09:59:50.000Z',
    messageId: '0100017f-ses-message-id',
    source: 'news@example.net',
    headersTruncated: false,
    headers: [
      { name: 'From', value: 'news@example.net' },
      { name: 'X-Broadside-Message', value: TOKEN },
    ],
  },
};

const complaint = {
  notificationType: 'Complaint',
  complaint: {
    complainedRecipients: [{ emailAddress: 'jane@example.com' }],
    timestamp: '2026-11-24T11:00:00.000Z',
    feedbackId: '0100017f-complaint',
    complaintFeedbackType: 'abuse',
  },
  mail: { messageId: '0100017f-ses-message-id', headers: [{ name: 'x-broadside-message', value: TOKEN }] },
};

const body = (msg: unknown) => Buffer.from(JSON.stringify(msg));

describe('SES via SNS', () => {
  it('maps a signed bounce to one hard event per recipient, with our token', async () => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate, topicArns: [TOPIC] });
    const result = await ses.verify(body(notification(bounce)), { 'x-amz-sns-message-type': 'Notification' });
    expect(result).toMatchObject({ ok: true, kind: 'notification', topicArn: TOPIC });
    if (!result.ok || result.kind !== 'notification') throw new Error('expected a notification');
    expect(result.events).toEqual([
      {
        provider: 'ses',
        eventId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:jane@example.com',
        type: 'hard',
        recipient: 'jane@example.com',
        messageToken: TOKEN,
        providerMessageId: '0100017f-ses-message-id',
        status: '5.1.1',
        diagnostic: 'smtp; 550 5.1.1 user unknown',
        occurredAt: new Date('2026-11-24T09:59:58.000Z'),
      },
      expect.objectContaining({ eventId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:rick@example.org', recipient: 'rick@example.org', type: 'hard' }),
    ]);
    expect(f.calls).toEqual([CERT_URL]);
  });

  it('maps Transient to soft and Undetermined to other, and verifies SignatureVersion 1 (SHA1)', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    for (const [bounceType, type] of [
      ['Transient', 'soft'],
      ['Undetermined', 'other'],
    ] as const) {
      const r = await ses.verify(body(notification({ ...bounce, bounce: { ...bounce.bounce, bounceType } }, { SignatureVersion: '1' })));
      expect(r.ok && r.kind === 'notification' && r.events.map((e) => e.type)).toEqual([type, type]);
    }
  });

  it('maps a complaint (with a Subject in the signed string) and caches the certificate', async () => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate });
    const msg = notification(complaint, { Subject: 'Amazon SES Email Event Notification' });
    const r1 = await ses.verify(body(msg));
    const r2 = await ses.verify(body(msg));
    expect(r1).toEqual(r2);
    expect(r1.ok && r1.kind === 'notification' && r1.events).toEqual([
      expect.objectContaining({ type: 'complaint', recipient: 'jane@example.com', messageToken: TOKEN, diagnostic: 'abuse', status: null }),
    ]);
    expect(f.calls).toHaveLength(1);
  });

  it('returns a subscription confirmation with its validated SubscribeURL', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    const subscribeUrl = 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc';
    const msg = sign({
      Type: 'SubscriptionConfirmation',
      MessageId: 'a1',
      Token: 'abc',
      TopicArn: TOPIC,
      Message: 'You have chosen to subscribe to the topic.\nTo confirm the subscription, visit the SubscribeURL.',
      SubscribeURL: subscribeUrl,
      Timestamp: '2026-11-24T10:00:00.000Z',
      SignatureVersion: '2',
      SigningCertURL: CERT_URL,
    });
    expect(await ses.verify(body(msg))).toEqual({
      ok: true,
      kind: 'subscription',
      type: 'SubscriptionConfirmation',
      topicArn: TOPIC,
      subscribeUrl,
      token: 'abc',
    });
  });

  it('refuses a signed confirmation whose SubscribeURL points elsewhere', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    const msg = sign({
      Type: 'SubscriptionConfirmation',
      MessageId: 'a1',
      Token: 'abc',
      TopicArn: TOPIC,
      Message: 'confirm',
      SubscribeURL: 'https://evil.example/confirm',
      Timestamp: '2026-11-24T10:00:00.000Z',
      SignatureVersion: '2',
      SigningCertURL: CERT_URL,
    });
    expect(await ses.verify(body(msg))).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it('refuses a tampered message', async () => {
    const msg = notification(bounce);
    msg.Message = msg.Message!.replace('Jane@Example.com', 'someone@else.com');
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    expect(await ses.verify(body(msg))).toMatchObject({ ok: false, reason: 'unauthorized', message: expect.stringMatching(/signature/) });
  });

  it('refuses a message signed with another key', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    const msg = sign({ ...notification(bounce) }, otherKeyPem);
    expect(await ses.verify(body(msg))).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it.each([
    'https://evil.example/SimpleNotificationService-abc.pem',
    'http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem',
    'https://sns.eu-west-1.amazonaws.com@evil.example/cert.pem',
    'https://user@sns.eu-west-1.amazonaws.com/cert.pem',
    'https://sns.eu-west-1.amazonaws.com:8443/cert.pem',
    'https://s3.amazonaws.com/cert.pem',
    'https://sns.s3.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.evil.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.eu-west-1.evil.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.eu-west-1.amazonaws.com.cn/SimpleNotificationService-abc.pem',
    'https://sns.amazonaws.com/SimpleNotificationService-abc.pem',
    'not a url',
  ])('refuses SigningCertURL %s without fetching it', async (url) => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate });
    const r = await ses.verify(body(notification(bounce, { SigningCertURL: url })));
    expect(r).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(f.calls).toEqual([]);
  });

  it.each([
    'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.ap-southeast-4.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem',
  ])('accepts the regional SNS host of %s', async (url) => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate });
    expect(await ses.verify(body(notification(bounce, { SigningCertURL: url })))).toMatchObject({ ok: true });
    expect(f.calls).toEqual([url]);
  });

  it('refuses a foreign topic before fetching its certificate, signed or not', async () => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate, topicArns: [TOPIC] });
    const foreign = { TopicArn: 'arn:aws:sns:eu-west-1:999999999999:other' };
    for (const msg of [notification(bounce, foreign), { ...notification(bounce, foreign), Signature: 'AAAA' }]) {
      expect(await ses.verify(body(msg))).toMatchObject({ ok: false, reason: 'unauthorized', message: 'SNS topic is not one we subscribed to' });
    }
    expect(f.calls).toEqual([]);
    // Our topic with a signature made for another message: refused by the signature check, after one fetch.
    expect(await ses.verify(body({ ...notification(bounce), Signature: notification(bounce, foreign).Signature! }))).toMatchObject({
      ok: false,
      reason: 'unauthorized',
      message: 'SNS signature does not match',
    });
    expect(f.calls).toEqual([CERT_URL]);
  });

  it('accepts a China-region certificate host', async () => {
    const url = 'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem';
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate });
    expect(await ses.verify(body(notification(bounce, { SigningCertURL: url })))).toMatchObject({ ok: true });
    expect(f.calls).toEqual([url]);
  });

  it('refuses an unsigned message, an unknown SignatureVersion and a foreign topic', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate, topicArns: [TOPIC] });
    const { Signature: _, ...unsigned } = notification(bounce);
    expect(await ses.verify(body(unsigned))).toMatchObject({ ok: false, reason: 'unauthorized' });
    expect(await ses.verify(body(notification(bounce, { SignatureVersion: '3' })))).toMatchObject({ ok: false, reason: 'unauthorized' });
    const foreign = notification(bounce, { TopicArn: 'arn:aws:sns:eu-west-1:999999999999:other' });
    expect(await ses.verify(body(foreign))).toMatchObject({ ok: false, reason: 'unauthorized', message: expect.stringMatching(/topic/) });
  });

  it('reports a certificate that cannot be fetched as unavailable, and fetches again next time', async () => {
    let attempts = 0;
    const ses = createSesWebhook({
      fetchCertificate: async () => {
        attempts++;
        if (attempts === 1) throw new Error('ECONNRESET');
        return certPem;
      },
    });
    expect(await ses.verify(body(notification(bounce)))).toMatchObject({ ok: false, reason: 'unavailable' });
    expect(await ses.verify(body(notification(bounce)))).toMatchObject({ ok: true });
    expect(attempts).toBe(2);
  });

  it('calls malformed bodies malformed, without fetching', async () => {
    const f = fetcher();
    const ses = createSesWebhook({ fetchCertificate: f.fetchCertificate });
    expect(await ses.verify('{"Type": "Notification",')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await ses.verify('[]')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await ses.verify(JSON.stringify({ Type: 'Other', MessageId: 'x', TopicArn: TOPIC }))).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await ses.verify(body(notification(bounce)), { 'x-amz-sns-message-type': 'SubscriptionConfirmation' })).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
    expect(f.calls).toEqual([]);
  });

  it('calls a signed Message that is not SES JSON malformed, and other SES types empty', async () => {
    const ses = createSesWebhook({ fetchCertificate: fetcher().fetchCertificate });
    const notJson = sign({ ...notification(bounce), Message: 'hello' });
    expect(await ses.verify(body(notJson))).toMatchObject({ ok: false, reason: 'malformed' });
    const noRecipients = notification({ notificationType: 'Bounce', bounce: { bounceType: 'Permanent' } });
    expect(await ses.verify(body(noRecipients))).toMatchObject({ ok: false, reason: 'malformed' });
    const delivery = notification({ notificationType: 'Delivery', mail: {}, delivery: {} });
    expect(await ses.verify(body(delivery))).toMatchObject({ ok: true, kind: 'notification', events: [] });
  });
});
