import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { Container } from '../container.js';
import { invalidInput } from '../errors.js';
import { sendErrorPage, sendPage, wantsJson } from '../http/respond.js';
import { confirmSubscription, DATA_LINK_RESEND_MINUTES, eraseSubscriber, findSubscriber, unsubscribe, type SubscriberRow } from './queries.js';
import { requestDataLinkMail } from './data-link.js';
import { TokenError, type TokenPurpose } from './reader-tokens.js';
import {
  checkInboxPage,
  confirmedPage,
  confirmPage,
  dataLinkRequestedPage,
  dataPage,
  ERASE_CONFIRMATION_MESSAGE,
  erasedPage,
  FRESH_LINK_MESSAGE,
  freshLinkNeededPage,
  managePage,
  signupPage,
  unsubscribedPage,
  unsubscribePage,
} from './pages.js';
import { evidenceOf, signUp } from './signup.js';
import { readerMailJobId } from '../queues/contract.js';
import { exportReaderData } from './reader-data.js';

// Only types here: lengths and syntax are signUp's, so the form and JSON get the same plain
// messages ("email is required"), an oversized name is capped rather than refused, and a long
// honeypot value is dropped as silently as a short one. BODY_LIMIT bounds every field.
const SignupBody = Type.Object({
  email: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  website: Type.Optional(Type.String()),
});

// Length and shape are checked by ReaderTokens.verify, which answers with the "link is not
// valid" page rather than a schema message.
const TokenParams = Type.Object({ token: Type.String() });

/**
 * The erase form's checkbox (`confirm=yes`), or `{"confirm": true}` in JSON: erasure cannot be
 * undone, so nothing else erases.
 */
function eraseConfirmed(body: unknown): boolean {
  const confirm = (body as { confirm?: unknown } | null | undefined)?.confirm;
  return confirm === 'yes' || confirm === true;
}

/** The reader's side: sign-up, confirmation, one-click unsubscribe, manage, and data (export, erase) by emailed link. */
export function readerRoutes(c: Container): FastifyPluginAsyncTypebox {
  const newsletter = c.config.newsletterName;
  const show = (reply: FastifyReply, status: number, title: string, body: Parameters<typeof sendPage>[3]) => sendPage(reply, status, title, body, newsletter);

  /** Verifies a reader token, or answers with a clear 4xx (page or JSON) and returns undefined. */
  function readerId(request: FastifyRequest, reply: FastifyReply, purpose: TokenPurpose, token: string): number | undefined {
    try {
      return c.tokens.verify(purpose, token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      const status = err.reason === 'expired' ? 410 : 400;
      const code = err.reason === 'expired' ? 'token_expired' : 'invalid_token';
      const message =
        err.reason !== 'expired'
          ? 'This link is not valid. Check that you copied the whole address from the email.'
          : purpose === 'data'
            ? 'This link has expired. Ask for a fresh one from the "Manage your subscription" link at the foot of any issue.'
            : 'This link has expired. Sign up again to get a fresh one.';
      if (wantsJson(request)) reply.code(status).send({ error: { code, message } });
      else sendErrorPage(reply, status, message, newsletter);
      return undefined;
    }
  }

  function goneReader(request: FastifyRequest, reply: FastifyReply) {
    const message = 'We hold no subscription for this link any more (it may have been erased).';
    if (wantsJson(request)) return reply.code(404).send({ error: { code: 'not_found', message } });
    return sendErrorPage(reply, 404, message, newsletter);
  }

  /** The reader a manage or data token names, or undefined once a 4xx has been sent. */
  async function tokenReader(request: FastifyRequest, reply: FastifyReply, purpose: 'manage' | 'data', token: string): Promise<SubscriberRow | undefined> {
    const id = readerId(request, reply, purpose, token);
    if (id === undefined) return undefined;
    const reader = await findSubscriber(c.pool, id);
    if (!reader) goneReader(request, reply);
    return reader;
  }

  /**
   * The data and erase addresses under the footer's permanent manage link, which a forwarded
   * email gives to anyone: they open nothing any more, and say how to get a fresh link.
   */
  function freshLinkNeeded(request: FastifyRequest, reply: FastifyReply, token: string) {
    if (readerId(request, reply, 'manage', token) === undefined) return reply;
    if (wantsJson(request)) return reply.code(403).send({ error: { code: 'fresh_link_required', message: FRESH_LINK_MESSAGE } });
    return show(reply, 403, 'This needs a fresh link', freshLinkNeededPage(`/manage/${encodeURIComponent(token)}`));
  }

  const dataLinks = (token: string) => {
    const base = `/data/${encodeURIComponent(token)}`;
    return { data: `${base}/data.json`, erase: `${base}/erase` };
  };

  return async (app) => {
    app.get('/', async (_request, reply) => show(reply, 200, `Subscribe`, signupPage(newsletter, c.config.postalAddress)));

    app.post(
      '/subscribe',
      {
        schema: { body: SignupBody },
        config: { rateLimit: { max: c.config.signupRateLimit, timeWindow: c.config.signupRateWindowSeconds * 1000 } },
      },
      async (request, reply) => {
        const body = request.body;
        const result = await signUp(c, request.log, body, evidenceOf(request));
        if (wantsJson(request)) {
          if (!result.ok) throw invalidInput(result.reason, { field: 'email' });
          return reply.code(202).send({ status: 'pending' });
        }
        if (!result.ok) return show(reply, 400, 'Subscribe', signupPage(newsletter, c.config.postalAddress, { error: result.reason, values: body }));
        return reply.redirect('/subscribe/check-inbox', 303);
      },
    );

    app.get('/subscribe/check-inbox', async (_request, reply) => show(reply, 200, 'Check your inbox', checkInboxPage()));

    // GET only shows a button: mail scanners follow links, and must not confirm anyone.
    app.get('/confirm/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      if (readerId(request, reply, 'confirm', token) === undefined) return reply;
      return show(reply, 200, 'Confirm your subscription', confirmPage(newsletter, `/confirm/${encodeURIComponent(token)}`));
    });

    app.post('/confirm/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const id = readerId(request, reply, 'confirm', token);
      if (id === undefined) return reply;
      const confirmed = await confirmSubscription(c.pool, id, evidenceOf(request));
      if (confirmed) {
        const job = { kind: 'welcome' as const, subscriberId: id };
        try {
          await c.queues.readerMail.add('welcome', job, { jobId: readerMailJobId(job, confirmed.confirmed_at.getTime()) });
        } catch (err) {
          // The reader is active, which is what matters; a missing welcome is not worth a failed page.
          request.log.error({ err, subscriberId: id }, 'could not queue the welcome email');
        }
        request.log.info({ subscriberId: id }, 'subscription confirmed');
        c.metrics.confirmation();
      } else if (!(await findSubscriber(c.pool, id))) {
        return goneReader(request, reply);
      }
      if (wantsJson(request)) return reply.send({ status: 'active' });
      return show(reply, 200, 'Subscribed', confirmedPage(newsletter, c.links.manage(id), !confirmed));
    });

    app.get('/unsubscribe/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      if (readerId(request, reply, 'unsubscribe', token) === undefined) return reply;
      return show(reply, 200, 'Unsubscribe', unsubscribePage(newsletter, `/unsubscribe/${encodeURIComponent(token)}`));
    });

    // RFC 8058 one-click: any POST (the mailbox provider sends List-Unsubscribe=One-Click,
    // as a form or as multipart/form-data) unsubscribes at once: 200, no redirect, no cookie.
    app.register(async (plain) => {
      const scoped = plain.withTypeProvider<TypeBoxTypeProvider>();
      // Only this route takes multipart, and only to drain it: the body's content does not matter.
      scoped.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, _body, done) => done(null, {}));
      scoped.post('/unsubscribe/:token', { schema: { params: TokenParams } }, async (request, reply) => {
        const { token } = request.params;
        const id = readerId(request, reply, 'unsubscribe', token);
        if (id === undefined) return reply;
        const status = await unsubscribe(c.pool, id);
        request.log.info({ subscriberId: id, status: status ?? 'erased' }, 'unsubscribe');
        // An erased reader is as unsubscribed as can be: the answer is the same.
        if (wantsJson(request)) return reply.code(200).send({ status: status ?? 'unsubscribed' });
        return show(reply, 200, 'Unsubscribed', unsubscribedPage(newsletter));
      });
    });

    // The footer's link. Shows the subscription and leaves at once; the data itself needs the
    // emailed link below. GET changes nothing.
    app.get('/manage/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const reader = await tokenReader(request, reply, 'manage', token);
      if (!reader) return reply;
      if (wantsJson(request)) {
        return reply.send({ email: reader.email, name: reader.name, status: reader.status, createdAt: reader.created_at, confirmedAt: reader.confirmed_at });
      }
      return show(
        reply,
        200,
        'Your subscription',
        managePage(
          reader,
          {
            unsubscribe: new URL(c.links.unsubscribe(reader.id)).pathname,
            dataLink: `/manage/${encodeURIComponent(token)}/data-link`,
          },
          c.config.dataLinkTtlMinutes,
        ),
      );
    });

    // Mails a fresh, short-lived link to the data to the reader's own address. The answer is the
    // same whether a mail went out, one went out too recently, or the reader is bounced or gone.
    app.post('/manage/:token/data-link', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const id = readerId(request, reply, 'manage', token);
      if (id === undefined) return reply;
      await requestDataLinkMail(c, request.log, id);
      if (wantsJson(request)) return reply.code(202).send({ status: 'requested' });
      return show(reply, 200, 'Check your inbox', dataLinkRequestedPage(c.config.dataLinkTtlMinutes, DATA_LINK_RESEND_MINUTES));
    });

    app.get('/manage/:token/data.json', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      return freshLinkNeeded(request, reply, token);
    });

    app.post('/manage/:token/erase', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      return freshLinkNeeded(request, reply, token);
    });

    // The emailed link: the reader's data, to download or erase, for DATA_LINK_TTL_MINUTES.
    app.get('/data/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const reader = await tokenReader(request, reply, 'data', token);
      if (!reader) return reply;
      if (wantsJson(request)) return reply.header('cache-control', 'no-store').send(exportReaderData(reader));
      return show(reply, 200, 'Your data', dataPage(reader, dataLinks(token)));
    });

    app.get('/data/:token/data.json', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const reader = await tokenReader(request, reply, 'data', token);
      if (!reader) return reply;
      return reply
        .header('content-disposition', 'attachment; filename="my-subscription.json"')
        .header('cache-control', 'no-store')
        .send(exportReaderData(reader));
    });

    app.post('/data/:token/erase', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params;
      const id = readerId(request, reply, 'data', token);
      if (id === undefined) return reply;
      if (!eraseConfirmed(request.body)) {
        if (wantsJson(request)) return reply.code(400).send({ error: { code: 'confirmation_required', message: ERASE_CONFIRMATION_MESSAGE } });
        const reader = await findSubscriber(c.pool, id);
        if (!reader) return goneReader(request, reply);
        return show(reply, 400, 'Your data', dataPage(reader, dataLinks(token), { error: ERASE_CONFIRMATION_MESSAGE }));
      }
      const erased = await eraseSubscriber(c.pool, id);
      request.log.info({ subscriberId: id, erased }, 'reader erased themself');
      if (wantsJson(request)) return reply.send({ status: 'erased' });
      return show(reply, 200, 'Erased', erasedPage());
    });
  };
}
