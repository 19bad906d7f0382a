// The OpenAPI description of the public routes that answer JSON: the sign-up a site posts to from
// its own script, the reader's links (confirm, unsubscribe, manage, the emailed data link) and
// the archive. These routes
// answer browsers with HTML pages, so their response schemas are documentation only (kept here,
// where nothing serializes with them); request schemas come from the routes themselves.
import type { FastifySchema } from 'fastify';
import Type from 'typebox';
import { ErrorSchema } from '../http/schemas.js';

const JSON_NOTE = 'Answers JSON when the body is JSON or `Accept` prefers `application/json`, an HTML page otherwise.';

const error = (description: string) => ({ ...ErrorSchema, description });
const tokenError = {
  400: error('`invalid_token`: the link is not one of ours, or was cut'),
};

const Status = <T extends string>(...values: T[]) => Type.Object({ status: Type.Union(values.map((v) => Type.Literal(v))) });

/** The client's copy is current: its ETag (If-None-Match) or date (If-Modified-Since) matched. No body. */
const NotModified = Type.Null({ description: 'not modified: the copy named by If-None-Match (or, without it, If-Modified-Since) is current; no body' });

const ArchiveItem = Type.Object({
  slug: Type.String(),
  subject: Type.String(),
  preheader: Type.String(),
  publishedAt: Type.String({ format: 'date-time' }),
  url: Type.String({ format: 'uri', description: 'the web version' }),
});

const Timestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

/** What GET /data/:token answers (src/subscribers/reader-data.ts). */
const ReaderData = Type.Object({
  exportedAt: Type.String({ format: 'date-time' }),
  subscriber: Type.Object({
    email: Type.String(),
    name: Type.Union([Type.String(), Type.Null()]),
    status: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    confirmedAt: Timestamp,
    unsubscribedAt: Timestamp,
    bouncedAt: Timestamp,
    complainedAt: Timestamp,
  }),
  consent: Type.Object({
    at: Timestamp,
    source: Type.String(),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    confirmedFromIp: Type.Union([Type.String(), Type.Null()]),
    confirmedWithUserAgent: Type.Union([Type.String(), Type.Null()]),
  }),
});

export type RouteDocs = FastifySchema & { summary: string; description?: string; tags: string[]; consumes?: string[] };

/** Keyed by `METHOD /fastify/:url`. */
export const publicRouteDocs: Record<string, RouteDocs> = {
  'POST /subscribe': {
    tags: ['readers'],
    summary: 'Sign up (double opt-in): a confirmation email goes out',
    description: `The same answer whether the address is new, pending or already subscribed (no enumeration). A form post gets \`303\` to /subscribe/check-inbox. Leave \`website\` empty: it is the honeypot, and a value there is dropped silently with the same answer. ${JSON_NOTE}`,
    consumes: ['application/json', 'application/x-www-form-urlencoded'],
    response: {
      202: {
        ...Status('pending'),
        description: 'accepted: a confirmation email is on its way (unless one went out in the last 10 minutes, or the reader is already active)',
      },
      400: error('`invalid_input`: the address is missing or not one we can mail'),
      429: error('`rate_limited`: too many sign-ups from this IP; see `Retry-After`'),
    },
  },
  'POST /confirm/:token': {
    tags: ['readers'],
    summary: 'Confirm a subscription (the button behind the emailed link)',
    description: `Activates the reader and queues the welcome email; confirming twice is harmless. ${JSON_NOTE}`,
    response: {
      200: Status('active'),
      ...tokenError,
      404: error('`not_found`: the reader was erased'),
      410: error('`token_expired`: the link is older than CONFIRM_TOKEN_TTL_HOURS; sign up again'),
    },
  },
  'POST /unsubscribe/:token': {
    tags: ['readers'],
    summary: 'Unsubscribe at once (RFC 8058 one-click)',
    description: `Any body (\`List-Unsubscribe=One-Click\` as a form, multipart or none); no cookie, no redirect. An erased reader gets the same answer. ${JSON_NOTE}`,
    response: {
      200: {
        ...Type.Object({
          status: Type.String({ description: '`unsubscribed`, or the state that already keeps the reader from mail (`bounced`, `complained`)' }),
        }),
        description: 'unsubscribed',
      },
      ...tokenError,
    },
  },
  'GET /manage/:token': {
    tags: ['readers'],
    summary: "The subscription a footer's manage link names (no personal data beyond the address)",
    description: `The footer's link lasts as long as the email does, so it shows the subscription and can unsubscribe, but gives no data and erases nothing: those need a fresh link mailed to the reader (POST …/data-link). ${JSON_NOTE}`,
    response: {
      200: Type.Object({
        email: Type.String(),
        name: Type.Union([Type.String(), Type.Null()]),
        status: Type.String(),
        createdAt: Type.String({ format: 'date-time' }),
        confirmedAt: Timestamp,
      }),
      ...tokenError,
      404: error('`not_found`: the reader was erased'),
    },
  },
  'POST /manage/:token/data-link': {
    tags: ['readers'],
    summary: 'Mail the reader a fresh, short-lived link to download or erase their data',
    description: `The link goes to the reader's own address and works for DATA_LINK_TTL_MINUTES; at most one such mail per reader every few minutes. The same answer whatever happened (no enumeration). ${JSON_NOTE}`,
    response: { 202: Status('requested'), ...tokenError },
  },
  'GET /data/:token': {
    tags: ['readers'],
    summary: 'Everything held about the reader (the emailed data link; `/data.json` beside it is the same as a download)',
    description: JSON_NOTE,
    response: {
      200: ReaderData,
      ...tokenError,
      404: error('`not_found`: the reader was erased'),
      410: error('`token_expired`: the link is older than DATA_LINK_TTL_MINUTES; ask for a fresh one from the manage page'),
    },
  },
  'POST /data/:token/erase': {
    tags: ['readers'],
    summary: 'Erase the reader (keeps a hash of the address as a suppression)',
    description: `Needs the confirmation: \`{"confirm": true}\` as JSON, or \`confirm=yes\` from the page's checkbox. ${JSON_NOTE}`,
    response: {
      200: Status('erased'),
      400: error('`confirmation_required`: the erasure was not confirmed; or `invalid_token`'),
      410: error('`token_expired`: the link is older than DATA_LINK_TTL_MINUTES'),
    },
  },
  'GET /issues': {
    tags: ['archive'],
    summary: 'Published issues, newest first, 50 a page',
    description: 'JSON when `Accept` prefers `application/json`, the archive page otherwise.',
    response: {
      200: Type.Object({
        items: Type.Array(ArchiveItem),
        older: Type.Union([Type.String(), Type.Null()], { description: 'pass as `before` for the next page; null on the last' }),
      }),
      304: NotModified,
      400: error('`invalid_input`: a malformed `before` cursor'),
    },
  },
  'GET /issues/:slug': {
    tags: ['archive'],
    summary: "An issue's web version",
    description: 'JSON when `Accept` prefers `application/json`, the page otherwise.',
    response: {
      200: Type.Object({ ...ArchiveItem.properties, html: Type.String({ description: "the issue's article, sanitised HTML" }) }),
      304: NotModified,
      404: error('`not_found`: no published issue has this slug'),
      410: error('`gone`: the editor took this issue out of the archive (unpublished)'),
    },
  },
};
