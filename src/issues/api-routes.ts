import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type Static } from 'typebox';
import { CursorQuery, idCursor, idPage, keysetPage, parseIdCursor } from '../http/keyset-page.js';
import { ErrorSchema, IdParams, iso, NullableTimestamp } from '../http/schemas.js';
import type { Container } from '../container.js';
import { invalidInput, notFound } from '../errors.js';
import { issueWarnings, personalise } from '../rendering/issue.js';
import { createIssue, MARKDOWN_MAX, PREHEADER_MAX, refuseDelete, refusePublish, refuseUnpublish, saveIssueChange, SUBJECT_MAX } from './authoring.js';
import {
  deleteDraft,
  findIssue,
  findRevision,
  listIssues,
  listRevisions,
  publishIssue,
  unpublishIssue,
  type IssueSummaryRow,
  type RevisionRow,
} from './queries.js';
import { previewVars, sendTestCopies, TEST_RECIPIENTS_MAX } from './test-send.js';
import { issueStates } from '../shared/statuses.js';

const IssueSchema = Type.Object({
  id: Type.Integer(),
  slug: Type.String(),
  subject: Type.String(),
  preheader: Type.String(),
  status: Type.Enum(['draft', 'published'], {
    description:
      'published (or sent) and not taken back to a draft: published_at is set. Kept for older clients: `inArchive` says whether it is public now, `state` what the editor can do with it',
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
  revision: Type.Integer({ minimum: 1, description: 'the latest revision: send it back (If-Match or `revision`) with a change' }),
  inArchive: Type.Boolean({ description: 'in the public archive and the feed' }),
  unpublishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'when the issue was last taken out of the archive (its web version answers 410 while it stays out)',
  }),
});
const IssueDetailSchema = Type.Intersect([IssueSchema, Type.Object({ markdown: Type.String() })]);
/** An issue as the API answers it (the CLI reads this type too). */
export type Issue = Static<typeof IssueSchema>;

const CreateBody = Type.Object({
  subject: Type.String({ minLength: 1, maxLength: SUBJECT_MAX * 2 }),
  markdown: Type.String({ minLength: 1, maxLength: MARKDOWN_MAX }),
  preheader: Type.Optional(Type.String({ maxLength: PREHEADER_MAX * 2 })),
});
const RevisionField = Type.Integer({
  minimum: 1,
  maximum: 2147483647,
  description: 'the revision this change is based on (or If-Match: "<revision>"); an older one than the current answers 409 edit_conflict',
});
const PatchBody = Type.Object(
  {
    subject: Type.Optional(CreateBody.properties.subject),
    markdown: Type.Optional(CreateBody.properties.markdown),
    preheader: Type.Optional(CreateBody.properties.preheader),
    revision: Type.Optional(RevisionField),
  },
  { minProperties: 1 },
);
const SavedSchema = Type.Intersect([
  IssueDetailSchema,
  Type.Object({
    correction: Type.Union([Type.Object({ mailAlreadySent: Type.Boolean() }), Type.Null()], {
      description:
        'set when the change corrected a published or sent issue: its web version, the archive and the feed changed; mail already sent (mailAlreadySent) cannot change',
    }),
  }),
]);
const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 200, description: 'the revision the change is based on: "<revision>"' })),
});

const RevisionSchema = Type.Object({
  number: Type.Integer(),
  kind: Type.Enum(['draft', 'correction'], { description: 'saved while a draft, or as a correction of a published or sent issue' }),
  subject: Type.String(),
  preheader: Type.String(),
  markdownBytes: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
});
const RevisionDetailSchema = Type.Intersect([RevisionSchema, Type.Object({ markdown: Type.String() })]);
const RevisionParams = Type.Object({ id: IdParams.properties.id, number: Type.Integer({ minimum: 1, maximum: 2147483647 }) });
const RevisionsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: Type.Optional(CursorQuery),
});

const ListQuery = Type.Object({
  status: Type.Optional(Type.Enum(['draft', 'published'], { description: 'publishedAt set or not (see state and inArchive)' })),
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

/** The entity tag of an issue: its revision. */
const etagOf = (revision: number) => `"${revision}"`;

/**
 * The revision a save was based on: from If-Match ("<n>", W/"<n>"; "*" names none) or the body's
 * `revision`; both given, they must agree. Undefined: the client did not say, and the change
 * applies to the current revision.
 */
function basedOn(ifMatch: string | undefined, field: number | undefined): number | undefined {
  let header: number | undefined;
  const value = ifMatch?.trim();
  if (value !== undefined && value !== '*') {
    const m = /^(?:W\/)?"([1-9][0-9]{0,9})"$/.exec(value);
    if (!m) throw invalidInput('If-Match must be one revision as an entity tag, e.g. "3" (the ETag of GET /api/issues/:id)', { field: 'if-match' });
    header = Number(m[1]);
  }
  if (header !== undefined && field !== undefined && header !== field) {
    throw invalidInput(`If-Match names revision ${header} but the body's revision is ${field}`, { field: 'revision' });
  }
  return header ?? field;
}

/** An issue's Markdown is larger than the forms the rest of the API takes. */
const ISSUE_BODY_LIMIT = 2 * MARKDOWN_MAX + 64 * 1024;

// A preview opened in a browser runs nothing and loads only images. Framed only by our own pages:
// the editor's app shows it in its Preview frame (/editor).
const PREVIEW_CSP = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

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
    warnings: issueWarnings(r.html_bytes, r.content.sections.length, r.content.media),
    revision: r.revision,
    inArchive: r.in_archive,
    unpublishedAt: iso(r.unpublished_at),
  });
  const toRevision = (r: RevisionRow) => ({
    number: r.number,
    kind: r.kind,
    subject: r.subject,
    preheader: r.preheader,
    markdownBytes: r.markdown_bytes,
    createdAt: r.created_at.toISOString(),
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
        return reply
          .code(201)
          .header('etag', etagOf(row.revision))
          .send({ ...toIssue(row), markdown: row.markdown });
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
        schema: {
          tags: ['issues'],
          description: 'The issue with its Markdown. Its ETag is its revision, for If-Match on a change.',
          params: IdParams,
          response: { 200: IssueDetailSchema, 404: ErrorSchema },
        },
      },
      async (request, reply) => {
        const row = await issueOr404(request.params.id);
        return reply.header('etag', etagOf(row.revision)).send({ ...toIssue(row), markdown: row.markdown });
      },
    );

    app.patch(
      '/api/issues/:id',
      {
        bodyLimit: ISSUE_BODY_LIMIT,
        schema: {
          tags: ['issues'],
          description:
            'Saves a change as a new revision: edits a draft, or corrects a published or sent issue (web version, archive and feed; ' +
            'mail already sent cannot change). Based on an older revision than the current (If-Match or `revision`): 409 edit_conflict ' +
            'with the current revision in error.details. Without either, the change applies to the current revision. ' +
            'Refused while a send is scheduled, sending or paused (409 send_in_progress), or for a draft whose send was triggered (409 not_draft).',
          params: IdParams,
          headers: IfMatchHeaders,
          body: PatchBody,
          response: { 200: SavedSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const { revision, ...patch } = request.body;
        const saved = await saveIssueChange(c.pool, c.renderer, id, patch, basedOn(request.headers['if-match'], revision));
        const { row } = saved;
        request.log.info({ issueId: row.id, revision: row.revision, correction: saved.correction !== null, htmlBytes: row.html_bytes }, 'issue saved');
        return reply.header('etag', etagOf(row.revision)).send({ ...toIssue(row), markdown: row.markdown, correction: saved.correction });
      },
    );

    app.get(
      '/api/issues/:id/revisions',
      {
        schema: {
          tags: ['issues'],
          description: 'Every saved revision of the issue, newest first (without the Markdown: see /revisions/:number).',
          params: IdParams,
          querystring: RevisionsQuery,
          response: {
            200: Type.Object({ items: Type.Array(RevisionSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (request) => {
        const { id } = request.params;
        const before = parseIdCursor(request.query.cursor);
        await issueOr404(id);
        const page = await keysetPage(
          request.query.limit ?? 50,
          (rows) => listRevisions(c.pool, id, { beforeNumber: before, limit: rows }),
          (last) => idCursor(last.number),
        );
        return { items: page.items.map(toRevision), nextCursor: page.next };
      },
    );

    app.get(
      '/api/issues/:id/revisions/:number',
      {
        schema: {
          tags: ['issues'],
          description: 'One revision of the issue, with its Markdown.',
          params: RevisionParams,
          response: { 200: RevisionDetailSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        const rev = await findRevision(c.pool, request.params.id, request.params.number);
        if (!rev) throw notFound('revision');
        return { ...toRevision(rev), markdown: rev.markdown };
      },
    );

    app.delete(
      '/api/issues/:id',
      {
        schema: { tags: ['issues'], params: IdParams, response: { 204: Type.Null(), 404: ErrorSchema, 409: ErrorSchema } },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!(await deleteDraft(c.pool, id))) await refuseDelete(c.pool, id);
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
          description:
            'Puts a draft in the public archive and the feed without mailing it (changes to it are corrections from then on), ' +
            'or puts back an issue taken out by unpublish. 409 already_published when it is in the archive.',
          params: IdParams,
          response: { 200: IssueSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const row = (await publishIssue(c.pool, id)) ?? (await refusePublish(c.pool, id));
        request.log.info({ issueId: id, slug: row.slug }, 'issue published to the archive');
        return reply.header('etag', etagOf(row.revision)).send(toIssue(row));
      },
    );

    app.post(
      '/api/issues/:id/unpublish',
      {
        schema: {
          tags: ['issues'],
          description:
            'Takes the issue out of the archive and the feed; its web version answers 410 Gone. An issue never sent becomes a draft again ' +
            '(editable, deletable); a sent one stays sent. POST /publish puts it back. 409 not_published when not in the archive, ' +
            'send_in_progress while a send is scheduled, sending or paused.',
          params: IdParams,
          response: { 200: IssueSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const row = (await unpublishIssue(c.pool, id)) ?? (await refuseUnpublish(c.pool, id));
        request.log.info({ issueId: id, slug: row.slug, draftAgain: row.published_at === null }, 'issue taken out of the archive');
        return reply.header('etag', etagOf(row.revision)).send(toIssue(row));
      },
    );
  };
}
