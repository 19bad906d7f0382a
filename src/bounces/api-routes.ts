import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type Static } from 'typebox';
import { CursorQuery, idPage } from '../http/keyset-page.js';
import { DateFilter, ErrorSchema, IdParams, parseDateParam } from '../http/schemas.js';
import type { Container } from '../container.js';
import { AppError } from '../errors.js';
import { findInboundReportRaw, listBounces, type BounceListRow } from './list-queries.js';
import { bounceSources, bounceTypes } from '../shared/statuses.js';
import { matchKinds } from './queries.js';

const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableId = Type.Union([Type.Integer(), Type.Null()]);

export const BounceSchema = Type.Object({
  id: Type.Integer(),
  type: Type.Enum(bounceTypes),
  source: Type.Enum(bounceSources),
  subscriberId: Type.Union([Type.Integer(), Type.Null()], { description: 'null: the report matched no reader' }),
  email: Type.Union([Type.String(), Type.Null()], { description: "the reader's current address; null when unmatched or erased" }),
  recipient: Type.Union([Type.String(), Type.Null()], { description: 'the address as the report named it' }),
  messageId: NullableId,
  sendId: NullableId,
  issueId: NullableId,
  matchedBy: Type.Union([Type.Enum(matchKinds), Type.Null()]),
  action: Type.Union([Type.String(), Type.Null()], { description: 'RFC 3464 Action (failed, delayed, ...)' }),
  status: Type.Union([Type.String(), Type.Null()], { description: 'enhanced status code, e.g. 5.1.1' }),
  diagnostic: NullableString,
  remoteMta: NullableString,
  feedbackType: Type.Union([Type.String(), Type.Null()], { description: 'ARF Feedback-Type (abuse, not-spam, ...)' }),
  reportId: Type.Union([Type.Integer(), Type.Null()], { description: 'the inbound report: GET /api/bounces/reports/{reportId}' }),
  occurredAt: Type.String({ format: 'date-time' }),
  receivedAt: Type.String({ format: 'date-time' }),
});
type Bounce = Static<typeof BounceSchema>;

const idQuery = (description: string) => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description });

const ListQuery = Type.Object({
  type: Type.Optional(Type.Enum(bounceTypes)),
  source: Type.Optional(Type.Enum(bounceSources)),
  issue: Type.Optional(idQuery("issue id: bounces of that issue's send")),
  since: Type.Optional(DateFilter('occurred at or after')),
  until: Type.Optional(DateFilter('occurred before')),
  matched: Type.Optional(Type.Boolean({ description: 'false: only the reports that matched no reader' })),
  subscriber: Type.Optional(idQuery('subscriber id')),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  cursor: Type.Optional(CursorQuery),
});

function toBounce(r: BounceListRow): Bounce {
  return {
    id: r.id,
    type: r.type,
    source: r.source,
    subscriberId: r.subscriber_id,
    email: r.email,
    recipient: r.recipient,
    messageId: r.message_id,
    sendId: r.send_id,
    issueId: r.issue_id,
    matchedBy: r.matched_by,
    action: r.action,
    status: r.status,
    diagnostic: r.diagnostic,
    remoteMta: r.remote_mta,
    feedbackType: r.feedback_type,
    reportId: r.report_id,
    occurredAt: r.occurred_at.toISOString(),
    receivedAt: r.created_at.toISOString(),
  };
}

/**
 * The editor's view of bounces and complaints, matched or not (a report that matched no reader
 * is kept for exactly this), and of the raw mail behind each report.
 */
export function bounceApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/api/bounces',
      {
        schema: {
          tags: ['bounces'],
          description: 'Bounces and complaints, newest first. `matched=false` lists the reports that matched no reader.',
          querystring: ListQuery,
          response: { 200: Type.Object({ items: Type.Array(BounceSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorSchema },
        },
      },
      async (request) => {
        const q = request.query;
        const since = parseDateParam(q.since, 'since');
        const until = parseDateParam(q.until, 'until');
        const page = await idPage({ cursor: q.cursor, limit: q.limit ?? 100 }, (keyset) =>
          listBounces(c.pool, {
            type: q.type,
            source: q.source,
            issueId: q.issue,
            since,
            until,
            matched: q.matched,
            subscriberId: q.subscriber,
            beforeId: keyset.from,
            limit: keyset.rows,
          }),
        );
        return { items: page.items.map(toBounce), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/api/bounces/reports/:id',
      {
        schema: {
          tags: ['bounces'],
          description: 'A mail the bounce listener accepted (a DSN, an ARF report, or something it could not read), byte for byte.',
          params: IdParams,
          // The stored bytes go out as they are; no serializer touches them. Errors are JSON.
          response: {
            200: {
              description: 'the mail as received',
              content: { 'message/rfc822': { schema: Type.Unsafe<Buffer>(Type.String({ format: 'binary' })) } },
            },
            404: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const raw = await findInboundReportRaw(c.pool, id);
        if (!raw) throw reportGone(id, c.config);
        // Anyone can mail the listener, so these bytes are a stranger's: downloaded, never
        // rendered or sniffed by a browser as something it could run.
        return reply
          .type('message/rfc822')
          .header('content-disposition', `attachment; filename="inbound-report-${id}.eml"`)
          .header('x-content-type-options', 'nosniff')
          .header('content-security-policy', "default-src 'none'; sandbox")
          .header('cache-control', 'no-store')
          .send(raw);
      },
    );
  };
}

/**
 * A report that is not there: never stored, or its raw mail deleted, after its retention period
 * (see retention.ts) or with its reader's erasure. Deleted ids are not remembered, so one 404
 * says which it may be; the bounce rows that pointed at it now show reportId null.
 */
function reportGone(id: number, cfg: Pick<Container['config'], 'bounceReportRetentionDays' | 'bounceUnmatchedReportRetentionDays'>): AppError {
  const kept = (days: number) => (days > 0 ? `${days} days` : 'for good');
  return new AppError(
    404,
    'not_found',
    `inbound report ${id} not found: there never was one, or its raw mail was deleted (raw reports are kept ${kept(cfg.bounceReportRetentionDays)} ` +
      `when they matched a reader, ${kept(cfg.bounceUnmatchedReportRetentionDays)} when not, and go when their reader is erased)`,
  );
}
