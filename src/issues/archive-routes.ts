import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { keysetPage } from '../http/keyset-page.js';
import { wantsJson } from '../http/respond.js';
import type { Container } from '../container.js';
import { AppError, notFound } from '../errors.js';
import { page, pageHeaders } from '../web/layout.js';
import { archivePage, issueArticle, issuePage, withdrawnPage } from './archive-pages.js';
import { issueFeed } from './feed.js';
import { acceptsGzip, notModified, prepare, type Prepared } from './public-archive.js';
import { findPublishedBySlug, listPublished, type IssueSummaryRow } from './queries.js';

const ARCHIVE_PAGE_SIZE = 50;
const FEED_SIZE = 20;

// The web version shows the issue's images, which live on other hosts. Caches may keep a copy
// but ask again each time (the ETag makes that a 304): a correction shows at once.
const archiveHeaders = {
  ...pageHeaders,
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'cache-control': 'public, no-cache',
};
const jsonHeaders = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'public, no-cache', 'x-content-type-options': 'nosniff' };
const feedHeaders = { 'content-type': 'application/rss+xml; charset=utf-8', 'cache-control': 'public, no-cache', 'x-content-type-options': 'nosniff' };

const ArchiveQuery = Type.Object({
  before: Type.Optional(Type.String({ pattern: '^[0-9a-z]{1,12}\\.[0-9a-z]{1,12}$', description: 'the "older" cursor of the previous page' })),
});
const SlugParams = Type.Object({ slug: Type.String({ maxLength: 200 }) });

const cursorOf = (i: IssueSummaryRow) => `${BigInt(i.published_us!).toString(36)}.${i.id.toString(36)}`;

/** An answer in two forms, the page and its JSON: which one the request gets depends on Accept. */
type TwoForms = { html: Prepared; json: Prepared };

/** Sends a prepared answer (gzipped when the client takes it), or 304 when the client's copy is the same. */
function sendPrepared(request: FastifyRequest, reply: FastifyReply, p: Prepared, headers: Record<string, string>, vary: boolean) {
  const zipped = p.gzip && acceptsGzip(request.headers['accept-encoding']) ? p.gzip : undefined;
  const etag = zipped ? zipped.etag : p.etag;
  reply
    .headers(headers)
    .header('etag', etag)
    .header('last-modified', p.lastModified)
    .header('vary', vary ? 'Accept, Accept-Encoding' : 'Accept-Encoding');
  if (notModified(request.headers as Record<string, string | undefined>, { etag, lastModified: p.lastModified })) return reply.code(304).send();
  if (zipped) return reply.header('content-encoding', 'gzip').send(zipped.body);
  return reply.send(p.body);
}

/**
 * The public archive: the list of published issues, each issue's web version, and RSS. All
 * three are answered from what the process prepared since the archive last changed
 * (c.archive, public-archive.ts), with an ETag and a Last-Modified.
 */
export function archiveRoutes(c: Container): FastifyPluginAsyncTypebox {
  const newsletter = c.config.newsletterName;
  const publicUrl = c.config.publicUrl;
  const summary = (i: IssueSummaryRow) => ({
    slug: i.slug,
    subject: i.subject,
    preheader: i.preheader,
    publishedAt: i.published_at!.toISOString(),
    url: c.renderer.webUrl(i.slug),
  });
  const sendForm = (request: FastifyRequest, reply: FastifyReply, forms: TwoForms) =>
    wantsJson(request) ? sendPrepared(request, reply, forms.json, jsonHeaders, true) : sendPrepared(request, reply, forms.html, archiveHeaders, true);

  return async (app) => {
    app.get('/issues', { schema: { querystring: ArchiveQuery } }, async (request, reply) => {
      const { before } = request.query;
      const forms = await c.archive.get(`list:${before ?? ''}`, async (f): Promise<TwoForms> => {
        let cursor: { publishedUs: bigint; id: number } | undefined;
        if (before) {
          const [us, id] = before.split('.') as [string, string];
          // Base 36, at most 12 digits each (the schema's pattern): the time below 2^63. An id part
          // past 2^53 was never one of ours and finds an empty page.
          cursor = { publishedUs: [...us].reduce((n, d) => n * 36n + BigInt(parseInt(d, 36)), 0n), id: parseInt(id, 36) };
        }
        const { items: issues, next: older } = await keysetPage(ARCHIVE_PAGE_SIZE, (rows) => listPublished(c.pool, { before: cursor, limit: rows }), cursorOf);
        const html = page('Past issues', archivePage(issues, newsletter, older && `/issues?before=${older}`), { newsletter, reading: true, indexable: true });
        return { html: prepare(html, f.changedAt), json: prepare(JSON.stringify({ items: issues.map(summary), older }), f.changedAt) };
      });
      return sendForm(request, reply, forms);
    });

    app.get('/issues/:slug', { schema: { params: SlugParams } }, async (request, reply) => {
      const { slug } = request.params;
      const state = await c.archive.slugState(slug);
      if (state === undefined) throw notFound('issue');
      const forms =
        state &&
        (await c.archive.get(`issue:${slug}`, async (): Promise<TwoForms | undefined> => {
          const issue = await findPublishedBySlug(c.pool, slug);
          // Taken out between the two statements: the next look at the archive says so.
          if (!issue) return undefined;
          const html = page(issue.subject, issuePage(issue, newsletter), { newsletter, reading: true, indexable: true });
          const json = JSON.stringify({ ...summary(issue), html: issueArticle(issue.content).value });
          return { html: prepare(html, issue.updated_at), json: prepare(json, issue.updated_at) };
        }));
      if (forms) return sendForm(request, reply, forms);
      if (state) {
        // In the archive when this generation began, out of it by the time its page was read
        // (unpublished, or a draft again after a cancelled send): the archive changed, so look
        // again before the next answer, and say nothing about it now.
        c.archive.changed();
        throw notFound('issue');
      }
      // Taken out of the archive by the editor: gone on purpose, so that search engines and
      // readers following an old link learn it (410), and a later republish brings it back.
      if (wantsJson(request)) throw new AppError(410, 'gone', 'this issue was taken out of the archive');
      return reply
        .code(410)
        .headers({ ...archiveHeaders, 'cache-control': 'no-cache' })
        .send(page('Issue withdrawn', withdrawnPage(newsletter), { newsletter, reading: true }));
    });

    app.get('/feed.xml', async (request, reply) => {
      const feed = await c.archive.get('feed', async (f) => {
        const issues = await listPublished(c.pool, { limit: FEED_SIZE });
        return prepare(issueFeed({ publicUrl, newsletter, issues, webUrl: (slug) => c.renderer.webUrl(slug) }), f.changedAt);
      });
      return sendPrepared(request, reply, feed, feedHeaders, false);
    });
  };
}
