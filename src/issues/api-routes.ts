import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type Static } from 'typebox';
import { CursorQuery, idPage } from '../http/keyset-page.js';
import { ErrorSchema, IdParams, iso, NullableTimestamp } from '../http/schemas.js';
import type { Container } from '../container.js';
import { notFound } from '../errors.js';
import { issueWarnings, personalise } from '../rendering/issue.js';
import { createIssue, editIssue, MARKDOWN_MAX, PREHEADER_MAX, refuseChange, SUBJECT_MAX } from './authoring.js';
import { deleteDraft, findIssue, listIssues, publishIssue, type IssueSummaryRow } from './queries.js';
import { previewVars, sendTestCopies, TEST_RECIPIENTS_MAX } from './test-send.js';
import { issueStates } from '../shared/statuses.js';

const IssueSchema = Type.Object({
  id: Type.Integer(),
  slug: Type.String(),
  subject: Type.String(),
  preheader: Type.String(),
  status: Type.Enum(['draft', 'published'], {
    description: 'whether the issue is in the archive (published_at is set); kept for older clients: `state` says what the editor can do with it',
  }),
  state: Type.Enum(issueStates, {
    description:
      "the issue's one state: draft, published (in the archive without a send), or its send's: scheduled, sending, paused, sent (done), cancelled. See the README for what each state allows.",
  }),
  scheduledAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when the scheduled send starts; null in every other state' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  publishedAt: NullableTimestamp,
  webUrl: Type.String({ description: 'the web version; public once the issue is published' }),
  sections: Type.Array(Type.Object({ id: Type.String(), title: Type.String() })),
  htmlBytes: Type.Integer({ description: 'size of the HTML part as a reader receives it' }),
  warnings: Type.Array(Type.String()),
});
const IssueDetailSchema = Type.Intersect([IssueSchema, Type.Object({ markdown: Type.String() })]);
/** An issue as the API answers it (the CLI reads this type too). */
export type Issue = Static<typeof IssueSchema>;

const CreateBody = Type.Object({
  subject: Type.String({ minLength: 1, maxLength: SUBJECT_MAX * 2 }),
  markdown: Type.String({ minLength: 1, maxLength: MARKDOWN_MAX }),
  preheader: Type.Optional(Type.String({ maxLength: PREHEADER_MAX * 2 })),
});
const PatchBody = Type.Partial(CreateBody, { minProperties: 1 });

const ListQuery = Type.Object({
  status: Type.Optional(Type.Enum(['draft', 'published'], { description: 'in the archive or not' })),
  state: Type.Optional(Type.Enum(issueStates, { description: 'only issues in this state' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: Type.Optional(CursorQuery),
});

const PreviewQuery = Type.Object({ format: Type.Optional(Type.Enum(['html', 'text'], { default: 'html' })) });

const TestBody = Type.Object({
  to: Type.Array(Type.String({ maxLength: 512 }), {
    minItems: 1,
    maxItems: 5 * TEST_RECIPIENTS_MAX,
    description: `at most ${TEST_RECIPIENTS_MAX} distinct addresses`,
  }),
});
const TestResultSchema = Type.Object({
  results: Type.Array(Type.Object({ to: Type.String(), status: Type.Enum(['submitted', 'rejected']), response: Type.String() })),
});

/** An issue's Markdown is larger than the forms the rest of the API takes. */
const ISSUE_BODY_LIMIT = 2 * MARKDOWN_MAX + 64 * 1024;

// A preview opened in a browser runs nothing and loads only images.
const PREVIEW_CSP = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function issueApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  const toIssue = (r: Omit<IssueSummaryRow, 'published_us'>): Issue => ({
    id: r.id,
    slug: r.slug,
    subject: r.subject,
    preheader: r.preheader,
    status: r.published_at ? 'published' : 'draft',
    state: r.state,
    scheduledAt: iso(r.send_scheduled_at),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    publishedAt: iso(r.published_at),
    webUrl: c.renderer.webUrl(r.slug),
    sections: r.content.sections.map((s) => ({ id: s.id, title: s.title })),
    htmlBytes: r.html_bytes,
    warnings: issueWarnings(r.html_bytes, r.content.sections.length),
  });

  async function issueOr404(id: number) {
    const row = await findIssue(c.pool, id);
    if (!row) throw notFound('issue');
    return row;
  }

  return async (app) => {
    app.post(
      '/api/issues',
      {
        bodyLimit: ISSUE_BODY_LIMIT,
        schema: { tags: ['issues'], body: CreateBody, response: { 201: IssueDetailSchema, 400: ErrorSchema } },
      },
      async (request, reply) => {
        const row = await createIssue(c.pool, c.renderer, request.body);
        request.log.info({ issueId: row.id, slug: row.slug, htmlBytes: row.html_bytes }, 'issue created');
        return reply.code(201).send({ ...toIssue(row), markdown: row.markdown });
      },
    );

    app.get(
      '/api/issues',
      {
        schema: {
          tags: ['issues'],
          querystring: ListQuery,
          response: { 200: Type.Object({ items: Type.Array(IssueSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorSchema },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await idPage({ cursor: q.cursor, limit: q.limit ?? 50 }, (keyset) =>
          listIssues(c.pool, {
            beforeId: keyset.from,
            published: q.status === undefined ? undefined : q.status === 'published',
            state: q.state,
            limit: keyset.rows,
          }),
        );
        return { items: page.items.map(toIssue), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/api/issues/:id',
      {
        schema: { tags: ['issues'], params: IdParams, response: { 200: IssueDetailSchema, 404: ErrorSchema } },
      },
      async (request) => {
        const row = await issueOr404(request.params.id);
        return { ...toIssue(row), markdown: row.markdown };
      },
    );

    app.patch(
      '/api/issues/:id',
      {
        bodyLimit: ISSUE_BODY_LIMIT,
        schema: {
          tags: ['issues'],
          params: IdParams,
          body: PatchBody,
          response: { 200: IssueDetailSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        const row = await editIssue(c.pool, c.renderer, id, request.body);
        request.log.info({ issueId: row.id, htmlBytes: row.html_bytes }, 'issue edited');
        return { ...toIssue(row), markdown: row.markdown };
      },
    );

    app.delete(
      '/api/issues/:id',
      {
        schema: { tags: ['issues'], params: IdParams, response: { 204: Type.Null(), 404: ErrorSchema, 409: ErrorSchema } },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!(await deleteDraft(c.pool, id))) await refuseChange(c.pool, id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/api/issues/:id/preview',
      {
        schema: {
          tags: ['issues'],
          description: 'The HTML part (or, with ?format=text, the text part) exactly as a reader receives it, personalised for a sample reader.',
          params: IdParams,
          querystring: PreviewQuery,
          // Content types per status, so the 404 is documented as JSON, not as HTML.
          response: {
            200: {
              description: 'the HTML part, or with ?format=text the text part',
              content: { 'text/html': { schema: Type.String() }, 'text/plain': { schema: Type.String() } },
            },
            404: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        const row = await issueOr404(request.params.id);
        const body = personalise({ html: row.html_template, text: row.text_template }, previewVars(c, row));
        reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
        if (request.query.format === 'text') return reply.type('text/plain; charset=utf-8').send(body.text);
        return reply.type('text/html; charset=utf-8').header('content-security-policy', PREVIEW_CSP).send(body.html);
      },
    );

    app.post(
      '/api/issues/:id/test',
      {
        schema: {
          tags: ['issues'],
          description: `Sends a copy now to up to ${TEST_RECIPIENTS_MAX} addresses, marked "[Test]" and not counted as a send.`,
          params: IdParams,
          body: TestBody,
          response: { 200: TestResultSchema, 400: ErrorSchema, 404: ErrorSchema, 502: ErrorSchema },
        },
      },
      async (request) => {
        const row = await issueOr404(request.params.id);
        return { results: await sendTestCopies(c, row, request.body.to, request.log) };
      },
    );

    app.post(
      '/api/issues/:id/publish',
      {
        schema: {
          tags: ['issues'],
          description: 'Puts a draft in the public archive and the feed without mailing it. The issue can no longer be edited.',
          params: IdParams,
          response: { 200: IssueSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        const row = (await publishIssue(c.pool, id)) ?? (await refuseChange(c.pool, id));
        request.log.info({ issueId: id, slug: row.slug }, 'issue published to the archive');
        return toIssue(row);
      },
    );
  };
}
