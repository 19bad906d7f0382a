import { createHmac, createSign, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/api/app.js';
import { loggerOptions } from '../../src/log.js';
import { bouncesOf, seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';
import { captureLog } from '../support/log-capture.js';
import { selfSignedCertificate } from '../support/certificates.js';

// Every provider through the real app, with keys made here: an ECDSA P-256 pair for SendGrid, a
// Mailgun signing key, Postmark credentials, and a self-signed certificate standing in for SNS's
// (its fetch is injected, like the SubscribeURL's, so nothing reaches the network).

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:broadside-bounces';
const CERT_URL = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem';
const PM_USER = 'postmark-hook';
const PM_PASSWORD = 'postmark-password-0123';
const MG_KEY = 'mailgun-signing-key-0123456789';
const sgKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const sgOther = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const t = useTestContext({
  env: {
    SES_SNS_TOPIC_ARNS: TOPIC,
    POSTMARK_WEBHOOK_USER: PM_USER,
    POSTMARK_WEBHOOK_PASSWORD: PM_PASSWORD,
    SENDGRID_WEBHOOK_PUBLIC_KEY: sgKeys.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    MAILGUN_WEBHOOK_SIGNING_KEY: MG_KEY,
  },
});

let certPem: string;
let snsKey: string;
let otherKey: string;
/** What the app fetched over "HTTPS", and whether the next SubscribeURL fetch fails. */
const fetched: string[] = [];
let subscribeFails = false;
let app: FastifyInstance;

beforeAll(async () => {
  ({ certPem, keyPem: snsKey } = selfSignedCertificate('sns.amazonaws.com'));
  otherKey = selfSignedCertificate('sns.amazonaws.com').keyPem;
  // The real app over the test's container, with only the HTTPS fetcher replaced.
  app = await buildApp({
    ...t.c,
    httpsGet: async (url: string) => {
      fetched.push(url);
      if (url === CERT_URL) return certPem;
      if (subscribeFails) throw new Error('connection refused');
      return '<ConfirmSubscriptionResponse/>';
    },
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});

const post = (provider: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: `/webhooks/bounces/${provider}`, payload: body, headers: { 'content-type': 'application/json', ...headers } });

const rowsOf = (source: string) => bouncesOf(t, 'source = $1::bounce_source', [source]);
let n = 0;
/** Fresh addresses per test: every test seeds its own readers. */
const addr = (label: string) => `${label}-${++n}-${randomBytes(3).toString('hex')}@example.org`;

// ---- SES (SNS) ----

function snsSign(msg: Record<string, string>, key = snsKey): Record<string, string> {
  const fields =
    msg.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const text = fields
    .filter((f) => msg[f] !== undefined)
    .map((f) => `${f}\n${msg[f]}\n`)
    .join('');
  return { ...msg, Signature: createSign('RSA-SHA256').update(text).sign(key, 'base64') };
}

function snsNotification(inner: unknown, extra: Record<string, string> = {}, key = snsKey): string {
  return JSON.stringify(
    snsSign(
      {
        Type: 'Notification',
        MessageId: randomUUID(),
        TopicArn: TOPIC,
        Message: JSON.stringify(inner),
        Timestamp: new Date().toISOString(),
        SignatureVersion: '2',
        SigningCertURL: CERT_URL,
        ...extra,
      },
      key,
    ),
  );
}

const sesBounce = (email: string, token: string | null, bounceType = 'Permanent') => ({
  notificationType: 'Bounce',
  bounce: {
    bounceType,
    bouncedRecipients: [{ emailAddress: email, action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' }],
    timestamp: new Date().toISOString(),
  },
  mail: { messageId: 'ses-1', headers: token ? [{ name: 'X-Broadside-Message', value: token }] : [] },
});

const snsPost = (body: string) => post('ses', body, { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': JSON.parse(body).Type });

describe('POST /webhooks/bounces/ses', () => {
  it('records a signed hard bounce against the reader its token names, and suppresses them', async () => {
    const s = await seedSubmittedSend(t, [addr('ses-hard'), addr('ses-bystander')]);
    const [m, other] = s.messages;
    const res = await snsPost(snsNotification(sesBounce(m!.email, m!.token)));
    expect([res.statusCode, res.json()]).toEqual([200, { received: 1, recorded: 1, duplicates: 0, unmatched: 0, ignored: 0 }]);
    expect(fetched).toContain(CERT_URL);
    expect((await subscriberStatus(t, m!.subscriberId)).status).toBe('bounced');
    expect((await subscriberStatus(t, other!.subscriberId)).status).toBe('active');
    expect(await bouncesOf(t, 'subscriber_id = $1', [m!.subscriberId])).toEqual([
      expect.objectContaining({ type: 'hard', source: 'ses', message_id: m!.id, matched_by: 'token', status: '5.1.1' }),
    ]);
  });

  it('matches a complaint without our token by the address (any case), and records a redelivery once', async () => {
    const s = await seedSubmittedSend(t, [addr('ses-complaint')]);
    const m = s.messages[0]!;
    const body = snsNotification({
      notificationType: 'Complaint',
      complaint: { complainedRecipients: [{ emailAddress: m.email.toUpperCase() }], timestamp: new Date().toISOString(), complaintFeedbackType: 'abuse' },
      mail: { messageId: 'ses-2' },
    });
    expect((await snsPost(body)).json()).toMatchObject({ recorded: 1, duplicates: 0 });
    expect((await snsPost(body)).json()).toMatchObject({ received: 1, recorded: 0, duplicates: 1 });
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('complained');
    expect(await bouncesOf(t, 'subscriber_id = $1', [m.subscriberId])).toEqual([
      expect.objectContaining({ type: 'complaint', matched_by: 'address', message_id: null }),
    ]);
  });

  it('keeps a soft bounce without suppressing, and an event for nobody we know as unmatched', async () => {
    const s = await seedSubmittedSend(t, [addr('ses-soft')]);
    const m = s.messages[0]!;
    expect((await snsPost(snsNotification(sesBounce(m.email, m.token, 'Transient')))).json()).toMatchObject({ recorded: 1, unmatched: 0 });
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
    const stranger = addr('ses-stranger');
    expect((await snsPost(snsNotification(sesBounce(stranger, null)))).json()).toMatchObject({ recorded: 1, unmatched: 1 });
    expect(await bouncesOf(t, 'recipient = $1', [stranger])).toEqual([expect.objectContaining({ subscriber_id: null, matched_by: null })]);
  });

  it('refuses a bad signature, a foreign topic and a missing signature with 401, recording nothing', async () => {
    const s = await seedSubmittedSend(t, [addr('ses-forged')]);
    const m = s.messages[0]!;
    const before = (await rowsOf('ses')).length;
    const forged = await snsPost(snsNotification(sesBounce(m.email, m.token), {}, otherKey));
    expect([forged.statusCode, forged.json().error.code]).toEqual([401, 'unauthorized']);
    // Validly signed (SNS signs for any AWS account), but not our topic.
    const foreign = await snsPost(snsNotification(sesBounce(m.email, m.token), { TopicArn: 'arn:aws:sns:eu-west-1:999999999999:theirs' }));
    expect([foreign.statusCode, foreign.json().error.message]).toEqual([401, 'SNS topic is not one we subscribed to']);
    const unsigned = JSON.parse(snsNotification(sesBounce(m.email, m.token)));
    delete unsigned.Signature;
    expect((await snsPost(JSON.stringify(unsigned))).statusCode).toBe(401);
    expect((await rowsOf('ses')).length).toBe(before);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });

  it('refuses posts naming another topic before fetching anything: 20 of them cost no outbound request', async () => {
    const fetchedBefore = fetched.length;
    // Each names a certificate not fetched before (a cached one would prove nothing), on a real
    // SNS host, and is validly signed: the topic alone decides.
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        snsPost(
          snsNotification(sesBounce(addr('ses-stranger'), null), {
            TopicArn: `arn:aws:sns:eu-west-1:999999999999:theirs-${i}`,
            SigningCertURL: `https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-stranger${i}.pem`,
          }),
        ),
      ),
    );
    expect(answers.map((r) => [r.statusCode, r.json().error.message])).toEqual(Array(20).fill([401, 'SNS topic is not one we subscribed to']));
    expect(fetched.length).toBe(fetchedBefore);
  });

  it('confirms a subscription to our topic by fetching its SubscribeURL; 503 when that fails, so SNS retries', async () => {
    const subscribeUrl = `https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=tok-${randomUUID()}`;
    const body = JSON.stringify(
      snsSign({
        Type: 'SubscriptionConfirmation',
        MessageId: randomUUID(),
        Token: 'tok',
        TopicArn: TOPIC,
        Message: 'You have chosen to subscribe to the topic.',
        SubscribeURL: subscribeUrl,
        Timestamp: new Date().toISOString(),
        SignatureVersion: '2',
        SigningCertURL: CERT_URL,
      }),
    );
    subscribeFails = true;
    try {
      const failed = await snsPost(body);
      expect([failed.statusCode, failed.json().error.code]).toEqual([503, 'unavailable']);
    } finally {
      subscribeFails = false;
    }
    const res = await snsPost(body);
    expect([res.statusCode, res.json()]).toEqual([200, { received: 0, recorded: 0, duplicates: 0, unmatched: 0, ignored: 0, subscription: 'confirmed' }]);
    expect(fetched.filter((u) => u === subscribeUrl)).toHaveLength(2);
  });

  it('does not follow the SubscribeURL of an unsubscription', async () => {
    const subscribeUrl = `https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=unsub-${randomUUID()}`;
    const body = JSON.stringify(
      snsSign({
        Type: 'UnsubscribeConfirmation',
        MessageId: randomUUID(),
        Token: 'tok',
        TopicArn: TOPIC,
        Message: 'You have chosen to deactivate subscription.',
        SubscribeURL: subscribeUrl,
        Timestamp: new Date().toISOString(),
        SignatureVersion: '2',
        SigningCertURL: CERT_URL,
      }),
    );
    const res = await snsPost(body);
    expect([res.statusCode, res.json().subscription]).toEqual([200, 'ignored']);
    expect(fetched).not.toContain(subscribeUrl);
  });
});

// ---- Postmark ----

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const pmAuth = basic(PM_USER, PM_PASSWORD);
let pmId = 1000;
const pmBounce = (email: string, token: string | null, type = 'HardBounce') =>
  JSON.stringify({
    RecordType: 'Bounce',
    ID: ++pmId,
    Type: type,
    MessageID: randomUUID(),
    Email: email,
    Metadata: token ? { broadside_message: token } : {},
    Details: 'smtp;550 5.1.1 The email account that you tried to reach does not exist.',
    BouncedAt: new Date().toISOString(),
  });

describe('POST /webhooks/bounces/postmark', () => {
  it('records a hard bounce (bounced) and a soft one (still active) with the right credentials', async () => {
    const s = await seedSubmittedSend(t, [addr('pm-hard'), addr('pm-soft')]);
    const [hard, soft] = s.messages;
    const r1 = await post('postmark', pmBounce(hard!.email, hard!.token), pmAuth);
    expect([r1.statusCode, r1.json()]).toEqual([200, { received: 1, recorded: 1, duplicates: 0, unmatched: 0, ignored: 0 }]);
    expect((await post('postmark', pmBounce(soft!.email, soft!.token, 'SoftBounce'), pmAuth)).json()).toMatchObject({ recorded: 1 });
    expect((await subscriberStatus(t, hard!.subscriberId)).status).toBe('bounced');
    const after = await subscriberStatus(t, soft!.subscriberId);
    expect([after.status, after.soft_bounces?.length]).toEqual(['active', 1]);
    expect(await bouncesOf(t, 'subscriber_id = $1', [hard!.subscriberId])).toEqual([
      expect.objectContaining({ source: 'postmark', type: 'hard', matched_by: 'token', event_id: String(pmId - 1) }),
    ]);
  });

  it('refuses wrong and missing credentials with 401, and a malformed body with good ones with 400', async () => {
    const s = await seedSubmittedSend(t, [addr('pm-refused')]);
    const m = s.messages[0]!;
    const before = (await rowsOf('postmark')).length;
    const wrong = await post('postmark', pmBounce(m.email, m.token), basic(PM_USER, 'not-the-password'));
    expect([wrong.statusCode, wrong.json().error.code]).toEqual([401, 'unauthorized']);
    expect((await post('postmark', pmBounce(m.email, m.token))).statusCode).toBe(401);
    const bad = await post('postmark', '{"RecordType": "Bounce",', pmAuth);
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'invalid_input']);
    expect((await rowsOf('postmark')).length).toBe(before);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });
});

// ---- SendGrid ----

function sgSigned(body: string, key = sgKeys.privateKey, timestamp = String(Math.floor(Date.now() / 1000))) {
  return {
    'x-twilio-email-event-webhook-signature': createSign('sha256')
      .update(timestamp + body)
      .sign(key, 'base64'),
    'x-twilio-email-event-webhook-timestamp': timestamp,
  };
}

describe('POST /webhooks/bounces/sendgrid', () => {
  it('records a signed batch once: hard, complaint by address, soft; deliveries ignored', async () => {
    const s = await seedSubmittedSend(t, [addr('sg-hard'), addr('sg-spam'), addr('sg-deferred')]);
    const [hard, spam, deferred] = s.messages;
    const ts = Math.floor(Date.now() / 1000);
    const id = randomUUID();
    const body = JSON.stringify([
      { email: hard!.email, event: 'delivered', sg_event_id: `${id}-0`, timestamp: ts, broadside_message: hard!.token },
      {
        email: hard!.email,
        event: 'bounce',
        type: 'bounce',
        status: '5.1.1',
        reason: '550 5.1.1 no such user',
        sg_event_id: `${id}-1`,
        timestamp: ts,
        broadside_message: hard!.token,
      },
      { email: spam!.email, event: 'spamreport', sg_event_id: `${id}-2`, timestamp: ts },
      { email: deferred!.email, event: 'deferred', response: '451 4.7.1 try later', sg_event_id: `${id}-3`, timestamp: ts, broadside_message: deferred!.token },
    ]);
    const res = await post('sendgrid', body, sgSigned(body));
    expect([res.statusCode, res.json()]).toEqual([200, { received: 3, recorded: 3, duplicates: 0, unmatched: 0, ignored: 0 }]);
    expect((await subscriberStatus(t, hard!.subscriberId)).status).toBe('bounced');
    expect((await subscriberStatus(t, spam!.subscriberId)).status).toBe('complained');
    expect((await subscriberStatus(t, deferred!.subscriberId)).status).toBe('active');
    expect((await bouncesOf(t, 'send_id = $1 OR subscriber_id = $2', [s.sendId, spam!.subscriberId])).map((b) => [b.type, b.matched_by])).toEqual([
      ['hard', 'token'],
      ['complaint', 'address'],
      ['soft', 'token'],
    ]);

    // SendGrid retries a batch it thinks failed: nothing is recorded twice.
    const again = await post('sendgrid', body, sgSigned(body));
    expect(again.json()).toEqual({ received: 3, recorded: 0, duplicates: 3, unmatched: 0, ignored: 0 });
    expect(await bouncesOf(t, 'event_id LIKE $1', [`${id}-%`])).toHaveLength(3);
  });

  it('refuses a bad or missing signature with 401 and a signed non-JSON body with 400', async () => {
    const s = await seedSubmittedSend(t, [addr('sg-refused')]);
    const m = s.messages[0]!;
    const body = JSON.stringify([{ email: m.email, event: 'bounce', type: 'bounce', sg_event_id: randomUUID(), broadside_message: m.token }]);
    const before = (await rowsOf('sendgrid')).length;
    const forged = await post('sendgrid', body, sgSigned(body, sgOther.privateKey));
    expect([forged.statusCode, forged.json().error.message]).toEqual([401, 'SendGrid signature does not match']);
    expect((await post('sendgrid', body)).statusCode).toBe(401);
    const notJson = '[{"event": "bounce"';
    const bad = await post('sendgrid', notJson, sgSigned(notJson));
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'invalid_input']);
    expect((await rowsOf('sendgrid')).length).toBe(before);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });
});

// ---- Mailgun ----

function mgBody(eventData: unknown, token = randomBytes(25).toString('hex'), key = MG_KEY): string {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = createHmac('sha256', key)
    .update(timestamp + token)
    .digest('hex');
  return JSON.stringify({ signature: { timestamp, token, signature }, 'event-data': eventData });
}
const mgFailed = (email: string, token: string | null, severity = 'permanent') => ({
  id: randomUUID(),
  timestamp: Date.now() / 1000,
  event: 'failed',
  severity,
  recipient: email,
  'delivery-status': { code: 550, 'enhanced-code': '5.1.1', message: '5.1.1 no such user' },
  message: { headers: { 'message-id': 'mg-1@example.net' } },
  'user-variables': token ? { broadside_message: token } : {},
});

describe('POST /webhooks/bounces/mailgun', () => {
  it('records a permanent failure (bounced) and a temporary one (still active)', async () => {
    const s = await seedSubmittedSend(t, [addr('mg-hard'), addr('mg-soft')]);
    const [hard, soft] = s.messages;
    const res = await post('mailgun', mgBody(mgFailed(hard!.email, hard!.token)));
    expect([res.statusCode, res.json()]).toEqual([200, { received: 1, recorded: 1, duplicates: 0, unmatched: 0, ignored: 0 }]);
    expect((await post('mailgun', mgBody(mgFailed(soft!.email, null, 'temporary')))).json()).toMatchObject({ recorded: 1 });
    expect((await subscriberStatus(t, hard!.subscriberId)).status).toBe('bounced');
    expect((await subscriberStatus(t, soft!.subscriberId)).status).toBe('active');
    expect((await bouncesOf(t, 'send_id = $1 OR subscriber_id = $2', [s.sendId, soft!.subscriberId])).map((b) => [b.source, b.type, b.matched_by])).toEqual([
      ['mailgun', 'hard', 'token'],
      ['mailgun', 'soft', 'address'],
    ]);
  });

  it('refuses a signature token used again with another body (401), and takes the same body again as a redelivery', async () => {
    const s = await seedSubmittedSend(t, [addr('mg-first'), addr('mg-victim')]);
    const [first, victim] = s.messages;
    const token = randomBytes(25).toString('hex');
    const body = mgBody(mgFailed(first!.email, first!.token), token);
    expect((await post('mailgun', body)).json()).toMatchObject({ recorded: 1 });
    // Someone who saw that request reuses its (still fresh) signature with an event of their own.
    const original = JSON.parse(body);
    const replay = JSON.stringify({ signature: original.signature, 'event-data': mgFailed(victim!.email, victim!.token) });
    const refused = await post('mailgun', replay);
    expect([refused.statusCode, refused.json().error.code]).toEqual([401, 'unauthorized']);
    expect((await subscriberStatus(t, victim!.subscriberId)).status).toBe('active');
    // The very same request again (Mailgun retrying): accepted, recorded once.
    const again = await post('mailgun', body);
    expect([again.statusCode, again.json()]).toEqual([200, { received: 1, recorded: 0, duplicates: 1, unmatched: 0, ignored: 0 }]);
    expect(await bouncesOf(t, 'send_id = $1', [s.sendId])).toHaveLength(1);
  });

  it('refuses a missing or wrong signature with 401', async () => {
    const s = await seedSubmittedSend(t, [addr('mg-refused')]);
    const m = s.messages[0]!;
    const before = (await rowsOf('mailgun')).length;
    const unsigned = await post('mailgun', JSON.stringify({ 'event-data': mgFailed(m.email, m.token) }));
    expect([unsigned.statusCode, unsigned.json().error.message]).toEqual([401, 'Mailgun webhook has no signature']);
    const forged = await post('mailgun', mgBody(mgFailed(m.email, m.token), undefined, 'not-the-signing-key-0123456789'));
    expect(forged.statusCode).toBe(401);
    expect((await rowsOf('mailgun')).length).toBe(before);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });
});

// ---- Routing ----

describe('POST /webhooks/bounces/<provider>: routing', () => {
  it('answers 404 for a provider we do not know', async () => {
    const res = await post('sparkpost', '[]');
    expect([res.statusCode, res.json().error.code]).toEqual([404, 'not_found']);
  });

  it('answers 401 naming the variable to set when the provider is not configured', async () => {
    const bare = await buildApp({
      ...t.c,
      config: {
        ...t.c.config,
        sesSnsTopicArns: undefined,
        postmarkWebhookUser: undefined,
        postmarkWebhookPassword: undefined,
        sendgridWebhookPublicKey: undefined,
        mailgunWebhookSigningKey: undefined,
      },
    });
    try {
      const expected: Record<string, string> = {
        ses: 'SES_SNS_TOPIC_ARNS',
        postmark: 'POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD',
        sendgrid: 'SENDGRID_WEBHOOK_PUBLIC_KEY',
        mailgun: 'MAILGUN_WEBHOOK_SIGNING_KEY',
      };
      for (const [provider, variable] of Object.entries(expected)) {
        const res = await bare.inject({
          method: 'POST',
          url: `/webhooks/bounces/${provider}`,
          payload: '{}',
          headers: { 'content-type': 'application/json', ...pmAuth },
        });
        expect([provider, res.statusCode, res.json().error]).toEqual([
          provider,
          401,
          { code: 'unauthorized', message: `the ${provider} webhook is not configured: set ${variable}` },
        ]);
      }
    } finally {
      await bare.close();
    }
  });

  it('refuses other content types with 415, and takes a SendGrid batch over the API body limit', async () => {
    const form = await post('postmark', 'a=b', { ...pmAuth, 'content-type': 'application/x-www-form-urlencoded' });
    expect([form.statusCode, form.json().error.code]).toEqual([415, 'unsupported_media_type']);
    // ~1 MB of events we do not record (opens), signed: the app's 64 KB limit does not apply here.
    const ts = Math.floor(Date.now() / 1000);
    const big = JSON.stringify(
      Array.from({ length: 8000 }, (_, i) => ({
        email: `r${i}@example.org`,
        event: 'open',
        sg_event_id: `open-${i}`,
        timestamp: ts,
        useragent: 'x'.repeat(80),
      })),
    );
    expect(big.length).toBeGreaterThan(1024 * 1024);
    const res = await post('sendgrid', big, sgSigned(big));
    expect([res.statusCode, res.json()]).toEqual([200, { received: 0, recorded: 0, duplicates: 0, unmatched: 0, ignored: 0 }]);
  });
});

describe('POST /webhooks/bounces/<provider>: logs', () => {
  it('logs one line per accepted request with the provider and counts, and no key, credential or signature', async () => {
    const captured = captureLog();
    const logged = await buildApp({ ...t.c, log: pino({ ...loggerOptions('info'), transport: undefined }, captured.stream) });
    try {
      const s = await seedSubmittedSend(t, [addr('log-mg')]);
      const m = s.messages[0]!;
      const body = mgBody(mgFailed(m.email, m.token));
      const send = (payload: string, headers: Record<string, string> = {}) =>
        logged.inject({ method: 'POST', url: '/webhooks/bounces/mailgun', payload, headers: { 'content-type': 'application/json', ...headers } });
      expect((await send(body)).statusCode).toBe(200);
      const pmBody = pmBounce(m.email, m.token);
      expect(
        (
          await logged.inject({
            method: 'POST',
            url: '/webhooks/bounces/postmark',
            payload: pmBody,
            headers: { 'content-type': 'application/json', ...basic(PM_USER, 'wrong-password-0123') },
          })
        ).statusCode,
      ).toBe(401);
      const entries = captured.lines();
      expect(entries.filter((e) => e.msg === 'provider webhook')).toEqual([
        expect.objectContaining({ provider: 'mailgun', received: 1, recorded: 1, duplicates: 0, unmatched: 0 }),
      ]);
      expect(entries).toContainEqual(
        expect.objectContaining({ provider: 'postmark', reason: 'unauthorized', msg: 'provider webhook refused: wrong webhook credentials' }),
      );
      const all = captured.text();
      const sig = (JSON.parse(body) as { signature: { signature: string; token: string } }).signature;
      for (const secret of [MG_KEY, sig.signature, sig.token, PM_PASSWORD, 'wrong-password-0123', m.token]) expect(all).not.toContain(secret);
    } finally {
      await logged.close();
    }
  });
});
