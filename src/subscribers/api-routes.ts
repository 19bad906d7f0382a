import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import Type, { type Static } from 'typebox';
import { DateFilter, ErrorSchema, IdParams, iso, NullableTimestamp, parseDateParam } from '../http/schemas.js';
import { CursorQuery, idPage } from '../http/keyset-page.js';
import { limitedBody } from '../http/limited-body.js';
import { allowLongUpload } from '../http/body-deadline.js';
import type { Container } from '../container.js';
import { consentSources, subscriberStatuses } from '../shared/statuses.js';
import { AppError, conflict, invalidInput, notFound } from '../errors.js';
import { exportCsv } from './csv-export.js';
import { importCsv } from './csv-import.js';
import { checkEmail, cleanName } from './email-address.js';
import { evidenceOf } from './signup.js';
import {
  countSubscribersByStatus,
  eraseSubscriber,
  findSubscriber,
  importSubscribers,
  listSubscribers,
  type ListFilter,
  type SubscriberRow,
} from './queries.js';

export const SubscriberSchema = Type.Object({
  id: Type.Integer(),
  email: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  status: Type.Enum(subscriberStatuses),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  confirmedAt: NullableTimestamp,
  unsubscribedAt: NullableTimestamp,
  bouncedAt: NullableTimestamp,
  complainedAt: NullableTimestamp,
  consent: Type.Object({
    at: Type.String({ format: 'date-time' }),
    source: Type.Enum(consentSources),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
  }),
});
type Subscriber = Static<typeof SubscriberSchema>;

export function toSubscriber(r: SubscriberRow): Subscriber {
  return {
    id: r.id,
    email: r.email,
    name: r.name,
    status: r.status,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    confirmedAt: iso(r.confirmed_at),
    unsubscribedAt: iso(r.unsubscribed_at),
    bouncedAt: iso(r.bounced_at),
    complainedAt: iso(r.complained_at),
    consent: { at: r.consent_at.toISOString(), source: r.consent_source, ip: r.consent_ip, userAgent: r.consent_user_agent },
  };
}

const ListQuery = Type.Object({
  status: Type.Optional(Type.Enum(subscriberStatuses)),
  source: Type.Optional(Type.Enum(consentSources)),
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'substring of the address' })),
  createdAfter: Type.Optional(DateFilter('created at or after')),
  createdBefore: Type.Optional(DateFilter('created before')),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  cursor: Type.Optional(CursorQuery),
});

const ExportQuery = Type.Omit(ListQuery, ['limit', 'cursor']);

const CreateBody = Type.Object({
  email: Type.String({ maxLength: 512 }),
  name: Type.Optional(Type.Union([Type.String({ maxLength: 1000 }), Type.Null()])),
  consentAt: Type.Optional(Type.String({ format: 'date-time', description: 'when the reader gave consent elsewhere; default now' })),
  consentIp: Type.Optional(Type.String({ anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] })),
});

const ImportReportSchema = Type.Object({
  rows: Type.Integer(),
  accepted: Type.Integer(),
  rejected: Type.Integer(),
  rejectedByReason: Type.Record(Type.String(), Type.Integer()),
  rejections: Type.Array(Type.Object({ line: Type.Integer(), email: Type.String(), reason: Type.String(), message: Type.String() })),
  rejectionsTruncated: Type.Boolean(),
});

const CountsSchema = Type.Object({
  ...Object.fromEntries(subscriberStatuses.map((s) => [s, Type.Integer({ minimum: 0 })])),
  total: Type.Integer({ minimum: 0 }),
});

const IMPORT_MAX_BYTES = 200 * 1024 * 1024;

/** The filters the list and the export share, from their query string. */
function filterOf(q: Static<typeof ExportQuery>): Omit<ListFilter, 'afterId' | 'limit'> {
  return {
    status: q.status,
    source: q.source,
    email: q.email,
    createdAfter: parseDateParam(q.createdAfter, 'createdAfter'),
    createdBefore: parseDateParam(q.createdBefore, 'createdBefore'),
  };
}

/** The editor's subscriber API: list, get, add, CSV import and export, erase. */
export function subscriberApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/api/subscribers',
      {
        schema: {
          tags: ['subscribers'],
          querystring: ListQuery,
          response: { 200: Type.Object({ items: Type.Array(SubscriberSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorSchema },
        },
      },
      async (request) => {
        const q = request.query;
        const filter = filterOf(q);
        const page = await idPage({ cursor: q.cursor, limit: q.limit ?? 50 }, (keyset) =>
          listSubscribers(c.pool, {
            ...filter,
            afterId: keyset.from,
            limit: keyset.rows,
          }),
        );
        return { items: page.items.map(toSubscriber), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/api/subscribers/export',
      {
        schema: {
          tags: ['subscribers'],
          description: 'The subscribers matching the filters, as CSV (streamed); the file can be imported again.',
          querystring: ExportQuery,
          // The CSV is streamed, so no serializer touches it; errors are JSON.
          response: {
            200: { description: 'CSV with a header row', content: { 'text/csv': { schema: Type.Unsafe<Readable>(Type.String()) } } },
            400: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        const q = request.query;
        const stream = await exportCsv(c.pool, filterOf(q));
        reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="subscribers-${new Date().toISOString().slice(0, 10)}.csv"`);
        return reply.send(stream);
      },
    );

    app.get(
      '/api/subscribers/counts',
      {
        schema: {
          tags: ['subscribers'],
          description: 'How many readers have each status (every status is present, 0 when nobody has it), and the total.',
          response: { 200: CountsSchema, 503: ErrorSchema },
        },
      },
      async () => {
        const counts = await countSubscribersByStatus(c.pool);
        return { ...counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
      },
    );

    app.get(
      '/api/subscribers/:id',
      {
        schema: { tags: ['subscribers'], params: IdParams, response: { 200: SubscriberSchema, 404: ErrorSchema } },
      },
      async (request) => {
        const { id } = request.params;
        const row = await findSubscriber(c.pool, id);
        if (!row) throw notFound('subscriber');
        return toSubscriber(row);
      },
    );

    app.post(
      '/api/subscribers',
      {
        schema: { tags: ['subscribers'], body: CreateBody, response: { 201: SubscriberSchema, 400: ErrorSchema, 409: ErrorSchema } },
      },
      async (request, reply) => {
        const body = request.body;
        const checked = checkEmail(body.email);
        if (!checked.ok) throw invalidInput(checked.reason, { field: 'email' });
        const consentAt = parseDateParam(body.consentAt, 'consentAt') ?? null;
        // Evidence of consent given in the future is no evidence; a minute covers clock skew.
        if (consentAt && consentAt.getTime() > Date.now() + 60_000) throw invalidInput('consentAt must not be in the future', { field: 'consentAt' });
        const outcome = await importSubscribers(c.pool, [{ email: checked.email, normalized: checked.normalized, name: cleanName(body.name) }], {
          source: 'api',
          at: consentAt,
          ip: body.consentIp ?? null,
          userAgent: evidenceOf(request).userAgent,
        });
        if (!outcome.accepted.has(checked.normalized)) {
          const refused = outcome.refused.get(checked.normalized)!;
          if (refused === 'already_active') throw conflict('already_subscribed', 'this address is already an active subscriber');
          throw conflict('suppressed', `this address is suppressed (${refused}) and cannot be added by the editor`);
        }
        const { rows } = await c.pool.query<SubscriberRow>('SELECT * FROM subscribers WHERE email_normalized = $1::text', [checked.normalized]);
        return reply.code(201).send(toSubscriber(rows[0]!));
      },
    );

    app.register(async (scoped) => {
      // CSV arrives as a stream and is read row by row; nothing buffers the whole file. Any
      // other body (JSON, a form) is refused before it is parsed.
      scoped.removeAllContentTypeParsers();
      scoped.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) => done(null, payload));
      scoped.addContentTypeParser('*', (_request, _payload, done) => {
        done(new AppError(415, 'unsupported_media_type', 'send the CSV as the request body with Content-Type: text/csv'));
      });
      scoped.post(
        '/api/subscribers/import',
        {
          schema: {
            tags: ['subscribers'],
            consumes: ['text/csv'],
            description:
              'CSV with a header row: an `email` column and optionally `name` and `status`. Rows become active subscribers; ' +
              'suppressed addresses are refused, and so are rows whose `status` is pending, unsubscribed, bounced or complained ' +
              '(as in a re-imported export).',
            response: { 200: ImportReportSchema, 400: ErrorSchema, 413: ErrorSchema, 415: ErrorSchema },
          },
        },
        async (request) => {
          const body = request.body as Readable | undefined;
          if (!body || typeof body.pipe !== 'function') throw invalidInput('send the CSV as the request body with Content-Type: text/csv');
          // The editor's token has been checked (onRequest): a file of up to IMPORT_MAX_BYTES, read
          // as fast as it is stored, may take longer than HTTP_BODY_TIMEOUT_SECONDS to arrive.
          allowLongUpload(request.raw);
          const evidence = evidenceOf(request);
          // An import may take minutes: its start has a line of its own (the access line comes at the end).
          request.log.info('CSV import started');
          const report = await importCsv(c.pool, limitedBody(body, IMPORT_MAX_BYTES, 'CSV'), { at: null, ...evidence });
          request.log.info({ rows: report.rows, accepted: report.accepted, rejected: report.rejected }, 'CSV import');
          return report;
        },
      );
    });

    app.delete(
      '/api/subscribers/:id',
      {
        schema: { tags: ['subscribers'], params: IdParams, response: { 204: Type.Null(), 404: ErrorSchema } },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!(await eraseSubscriber(c.pool, id))) throw notFound('subscriber');
        request.log.info({ subscriberId: id }, 'subscriber erased by the editor');
        return reply.code(204).send(null);
      },
    );
  };
}
