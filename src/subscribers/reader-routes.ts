import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { Container } from '../container.js';
import { invalidInput } from '../errors.js';
import { sendErrorPage, sendPage, wantsJson } from '../api/respond.js';
import { confirmSubscription, eraseSubscriber, findSubscriber, unsubscribe, type SubscriberRow } from './queries.js';
import { TokenError, type TokenPurpose } from './reader-tokens.js';
import { checkInboxPage, confirmedPage, confirmPage, erasedPage, managePage, signupPage, unsubscribedPage, unsubscribePage } from './pages.js';
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

/** The reader's side: sign-up, confirmation, one-click unsubscribe, manage/export/erase. */
export function readerRoutes(c: Container): FastifyPluginAsync {
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
      const message = err.reason === 'expired'
        ? 'This link has expired. Sign up again to get a fresh one.'
        : 'This link is not valid. Check that you copied the whole address from the email.';
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

  /** The reader a manage token names, or undefined once a 4xx has been sent. */
  async function managedReader(request: FastifyRequest, reply: FastifyReply, token: string): Promise<SubscriberRow | undefined> {
    const id = readerId(request, reply, 'manage', token);
    if (id === undefined) return undefined;
    const reader = await findSubscriber(c.pool, id);
    if (!reader) goneReader(request, reply);
    return reader;
  }

  return async (app) => {
    app.get('/', async (_request, reply) => show(reply, 200, `Subscribe`, signupPage(newsletter, c.config.postalAddress)));

    app.post(
      '/subscribe',
      {
        schema: { body: SignupBody },
        config: { rateLimit: { max: c.config.signupRateLimit, timeWindow: c.config.signupRateWindowSeconds * 1000 } },
      },
      async (request, reply) => {
        const body = request.body as Type.Static<typeof SignupBody>;
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
      const { token } = request.params as { token: string };
      if (readerId(request, reply, 'confirm', token) === undefined) return reply;
      return show(reply, 200, 'Confirm your subscription', confirmPage(newsletter, `/confirm/${encodeURIComponent(token)}`));
    });

    app.post('/confirm/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params as { token: string };
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
      const { token } = request.params as { token: string };
      if (readerId(request, reply, 'unsubscribe', token) === undefined) return reply;
      return show(reply, 200, 'Unsubscribe', unsubscribePage(newsletter, `/unsubscribe/${encodeURIComponent(token)}`));
    });

    // RFC 8058 one-click: any POST (the mailbox provider sends List-Unsubscribe=One-Click,
    // as a form or as multipart/form-data) unsubscribes at once: 200, no redirect, no cookie.
    app.register(async (scoped) => {
      // Only this route takes multipart, and only to drain it: the body's content does not matter.
      scoped.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, _body, done) => done(null, {}));
      scoped.post('/unsubscribe/:token', { schema: { params: TokenParams } }, async (request, reply) => {
        const { token } = request.params as { token: string };
        const id = readerId(request, reply, 'unsubscribe', token);
        if (id === undefined) return reply;
        const status = await unsubscribe(c.pool, id);
        request.log.info({ subscriberId: id, status: status ?? 'erased' }, 'unsubscribe');
        // An erased reader is as unsubscribed as can be: the answer is the same.
        if (wantsJson(request)) return reply.code(200).send({ status: status ?? 'unsubscribed' });
        return show(reply, 200, 'Unsubscribed', unsubscribedPage(newsletter));
      });
    });

    app.get('/manage/:token', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params as { token: string };
      const reader = await managedReader(request, reply, token);
      if (!reader) return reply;
      const base = `/manage/${encodeURIComponent(token)}`;
      return show(reply, 200, 'Your subscription', managePage(reader, {
        unsubscribe: new URL(c.links.unsubscribe(reader.id)).pathname,
        data: `${base}/data.json`,
        erase: `${base}/erase`,
      }));
    });

    app.get('/manage/:token/data.json', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params as { token: string };
      const reader = await managedReader(request, reply, token);
      if (!reader) return reply;
      return reply
        .header('content-disposition', 'attachment; filename="my-subscription.json"')
        .header('cache-control', 'no-store')
        .send(exportReaderData(reader));
    });

    app.post('/manage/:token/erase', { schema: { params: TokenParams } }, async (request, reply) => {
      const { token } = request.params as { token: string };
      const id = readerId(request, reply, 'manage', token);
      if (id === undefined) return reply;
      const erased = await eraseSubscriber(c.pool, id);
      request.log.info({ subscriberId: id, erased }, 'reader erased themself');
      if (wantsJson(request)) return reply.send({ status: 'erased' });
      return show(reply, 200, 'Erased', erasedPage());
    });
  };
}
