import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { ErrorSchema } from '../../http/schemas.js';
import type { Container } from '../../container.js';
import { AppError, notFound } from '../../errors.js';
import { unauthorized, type ProviderEvent, type ProviderName, type Rejected, type RejectReason } from './event-parsing.js';
import type { HttpsGet } from './https-get.js';
import { createMailgunWebhook } from './mailgun.js';
import { createPostmarkWebhook } from './postmark.js';
import { recordProviderEvents } from './record-events.js';
import { createSendgridWebhook } from './sendgrid.js';
import { createSesWebhook } from './ses.js';
import { useSignatureToken } from './signature-tokens.js';

/** SendGrid posts batches of up to a few thousand events; everything else is far smaller. */
const WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024;

export type WebhookRoutesOptions = {
  /** Fetches SNS certificates and SubscribeURLs; defaults to the container's. */
  httpsGet?: HttpsGet;
};

const ProviderParams = Type.Object({ provider: Type.String({ description: 'ses, postmark, sendgrid or mailgun' }) });

const WebhookReceipt = Type.Object({
  received: Type.Integer({ description: 'bounce and complaint events in the request (deliveries, opens… are not counted)' }),
  recorded: Type.Integer(),
  duplicates: Type.Integer({ description: 'already recorded: a redelivery' }),
  unmatched: Type.Integer({ description: 'recorded without a reader (no token of ours, no reader with that address)' }),
  ignored: Type.Integer({ description: 'provider events of a bounce kind sent without an id or recipient' }),
  subscription: Type.Optional(Type.Enum(['confirmed', 'ignored'], { description: 'SNS only: what was done with a (un)subscription confirmation' })),
});
type Receipt = Static<typeof WebhookReceipt>;

/** What a verified request holds: events, or (SNS) a subscription message. */
type Verified = { events: ProviderEvent[]; ignored: number; subscription?: 'confirmed' | 'ignored' };

type Provider = {
  /** Null when configured; else the variables to set (a 401 names them: we cannot authenticate). */
  missing: string | null;
  verify(raw: Buffer, request: FastifyRequest): Promise<Verified>;
};

const REJECTED: Record<RejectReason, { status: number; code: string }> = {
  unauthorized: { status: 401, code: 'unauthorized' },
  malformed: { status: 400, code: 'invalid_input' },
  unavailable: { status: 503, code: 'unavailable' },
};

function refuse(request: FastifyRequest, provider: string, r: Rejected): never {
  // The verifiers' messages name what was wrong, never a key, signature or address.
  request.log.warn({ provider, reason: r.reason }, `provider webhook refused: ${r.message}`);
  const { status, code } = REJECTED[r.reason];
  throw new AppError(status, code, r.message);
}

/**
 * `POST /webhooks/bounces/<provider>`: bounce and complaint events from Amazon SES (through SNS),
 * Postmark, SendGrid and Mailgun, each authenticated the provider's way, mapped to one event
 * shape, matched to a reader and recorded once per provider event id (a redelivery is harmless).
 *
 * Outside the bearer scope: providers authenticate with their own signatures or credentials.
 * A provider whose key is not configured answers 401 (nothing could be authenticated). SES in
 * particular needs SES_SNS_TOPIC_ARNS: any AWS account can make SNS sign a message validly, so
 * the signature alone proves only that it came through SNS; the topic allow-list proves it is
 * ours. A message from another topic is also a 401.
 */
export function webhookRoutes(c: Container, opts: WebhookRoutesOptions = {}): FastifyPluginAsyncTypebox {
  const { config } = c;
  const httpsGet = opts.httpsGet ?? ((url: string) => c.httpsGet(url));
  const tolerance = config.webhookToleranceSeconds;

  const topicArns = config.sesSnsTopicArns ?? [];
  const ses = topicArns.length > 0 ? createSesWebhook({ fetchCertificate: httpsGet, topicArns }) : undefined;
  const postmark =
    config.postmarkWebhookUser && config.postmarkWebhookPassword
      ? createPostmarkWebhook({ user: config.postmarkWebhookUser, password: config.postmarkWebhookPassword })
      : undefined;
  const sendgrid = config.sendgridWebhookPublicKey
    ? createSendgridWebhook({ publicKey: config.sendgridWebhookPublicKey, toleranceSeconds: tolerance })
    : undefined;
  const mailgun = config.mailgunWebhookSigningKey
    ? createMailgunWebhook({ signingKey: config.mailgunWebhookSigningKey, toleranceSeconds: tolerance })
    : undefined;

  const providers: Record<ProviderName, Provider> = {
    ses: {
      missing: ses ? null : 'SES_SNS_TOPIC_ARNS',
      async verify(raw, request) {
        const r = await ses!.verify(raw, request.headers);
        if (!r.ok) return refuse(request, 'ses', r);
        if (r.kind === 'notification') return { events: r.events, ignored: 0 };
        // An UnsubscribeConfirmation's SubscribeURL would subscribe us again: whoever removed the
        // subscription meant it, so it is acknowledged and left alone.
        if (r.type !== 'SubscriptionConfirmation') {
          request.log.warn({ provider: 'ses', topicArn: r.topicArn }, 'SNS subscription removed; not re-subscribing');
          return { events: [], ignored: 0, subscription: 'ignored' };
        }
        try {
          await httpsGet(r.subscribeUrl);
        } catch (err) {
          request.log.warn({ provider: 'ses', topicArn: r.topicArn, err: (err as Error).message }, 'SNS subscription confirmation failed');
          // 503: SNS sends the confirmation again later.
          throw new AppError(503, 'unavailable', 'could not confirm the SNS subscription; it will be retried');
        }
        request.log.info({ provider: 'ses', topicArn: r.topicArn }, 'SNS subscription confirmed');
        return { events: [], ignored: 0, subscription: 'confirmed' };
      },
    },
    postmark: {
      missing: postmark ? null : 'POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD',
      async verify(raw, request) {
        const r = postmark!.verify(raw, request.headers);
        if (!r.ok) return refuse(request, 'postmark', r);
        return { events: r.events, ignored: 0 };
      },
    },
    sendgrid: {
      missing: sendgrid ? null : 'SENDGRID_WEBHOOK_PUBLIC_KEY',
      async verify(raw, request) {
        const r = sendgrid!.verify(raw, request.headers);
        if (!r.ok) return refuse(request, 'sendgrid', r);
        return { events: r.events, ignored: r.ignored };
      },
    },
    mailgun: {
      missing: mailgun ? null : 'MAILGUN_WEBHOOK_SIGNING_KEY',
      async verify(raw, request) {
        const r = mailgun!.verify(raw);
        if (!r.ok) return refuse(request, 'mailgun', r);
        // A timestamp is accepted within ±tolerance, so a token must be remembered for 2×.
        const use = await useSignatureToken(c.redis, `${config.queuePrefix}:webhooks:mailgun-token`, r.signatureToken, raw, 2 * tolerance);
        if (use === 'replay') return refuse(request, 'mailgun', unauthorized('Mailgun signature token was already used with another body'));
        return { events: r.events, ignored: 0 };
      },
    },
  };

  const providerOf = (name: string): Provider | undefined => (Object.hasOwn(providers, name) ? providers[name as ProviderName] : undefined);

  return async (app) => {
    // The verifiers need the exact bytes that were signed: every body is kept as a Buffer.
    // JSON (Postmark, SendGrid, Mailgun) and text/plain (SNS); anything else is refused unread.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_request, body, done) =>
      done(null, body),
    );
    app.addContentTypeParser('*', (_request, _payload, done) => {
      done(new AppError(415, 'unsupported_media_type', 'provider webhooks are JSON (application/json, or text/plain from SNS)'));
    });

    app.post(
      '/webhooks/bounces/:provider',
      {
        bodyLimit: WEBHOOK_BODY_LIMIT,
        // Before the body is read: an unknown or unconfigured provider costs us no parsing.
        onRequest: async (request) => {
          const { provider } = request.params;
          const p = providerOf(provider);
          if (!p) throw notFound(`webhook provider "${provider.slice(0, 40)}"`);
          if (p.missing) throw new AppError(401, 'unauthorized', `the ${provider} webhook is not configured: set ${p.missing}`);
        },
        schema: {
          tags: ['webhooks'],
          description:
            "Bounce and complaint events from Amazon SES (SNS), Postmark, SendGrid or Mailgun, authenticated the provider's way. " +
            'Each event is recorded once, matched to a reader by our token or, failing that, by address.',
          params: ProviderParams,
          response: { 200: WebhookReceipt, 400: ErrorSchema, 401: ErrorSchema, 404: ErrorSchema, 413: ErrorSchema, 415: ErrorSchema, 503: ErrorSchema },
        },
      },
      async (request): Promise<Receipt> => {
        const { provider } = request.params;
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const verified = await providerOf(provider)!.verify(raw, request);
        const tally = await recordProviderEvents(c, verified.events);
        const receipt: Receipt = { ...tally, ignored: verified.ignored, ...(verified.subscription ? { subscription: verified.subscription } : {}) };
        request.log.info({ provider, ...receipt }, 'provider webhook');
        return receipt;
      },
    );
  };
}
