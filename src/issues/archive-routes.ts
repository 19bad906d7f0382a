import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { keysetPage } from '../http/keyset-page.js';
import { wantsJson } from '../http/respond.js';
import type { Container } from '../container.js';
import { AppError, notFound } from '../errors.js';
import { page, pageHeaders } from '../web/layout.js';
import { archivePage, issueArticle, issuePage, withdrawnPage } from './archive-pages.js';
import { issueFeed } from './feed.js';
import { findPublishedBySlug, isUnpublishedSlug, listPublished, type IssueSummaryRow } from './queries.js';

const ARCHIVE_PAGE_SIZE = 50;
const FEED_SIZE = 20;

// The web version shows the issue's images, which live on other hosts.
const archiveHeaders = {
  ...pageHeaders,
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'cache-control': 'public, max-age=300',
};

const ArchiveQuery = Type.Object({
  before: Type.Optional(Type.String({ pattern: '^[0-9a-z]{1,12}\\.[0-9a-z]{1,12}$', description: 'the "older" cursor of the previous page' })),
});
const SlugParams = Type.Object({ slug: Type.String({ maxLength: 200 }) });

const cursorOf = (i: IssueSummaryRow) => `${BigInt(i.published_us!).toString(36)}.${i.id.toString(36)}`;

/** The public archive: the list of published issues, each issue's web version, and RSS. */
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

  return async (app) => {
    app.get('/issues', { schema: { querystring: ArchiveQuery } }, async (request, reply) => {
      const { before } = request.query;
      let cursor: { publishedUs: bigint; id: number } | undefined;
      if (before) {
        const [us, id] = before.split('.') as [string, string];
        // Base 36, at most 12 digits each (the schema's pattern): the time below 2^63. An id part
        // past 2^53 was never one of ours and finds an empty page.
        cursor = { publishedUs: [...us].reduce((n, d) => n * 36n + BigInt(parseInt(d, 36)), 0n), id: parseInt(id, 36) };
      }
      const { items: issues, next: older } = await keysetPage(ARCHIVE_PAGE_SIZE, (rows) => listPublished(c.pool, { before: cursor, limit: rows }), cursorOf);
      if (wantsJson(request)) return { items: issues.map(summary), older };
      return reply
        .headers(archiveHeaders)
        .send(page('Past issues', archivePage(issues, newsletter, older && `/issues?before=${older}`), { newsletter, reading: true, indexable: true }));
    });

    app.get('/issues/:slug', { schema: { params: SlugParams } }, async (request, reply) => {
      const issue = await findPublishedBySlug(c.pool, request.params.slug);
      if (!issue) {
        if (!(await isUnpublishedSlug(c.pool, request.params.slug))) throw notFound('issue');
        // Taken out of the archive by the editor: gone on purpose, so that search engines and
        // readers following an old link learn it (410), and a later republish brings it back.
        if (wantsJson(request)) throw new AppError(410, 'gone', 'this issue was taken out of the archive');
        return reply
          .code(410)
          .headers({ ...archiveHeaders, 'cache-control': 'no-cache' })
          .send(page('Issue withdrawn', withdrawnPage(newsletter), { newsletter, reading: true }));
      }
      if (wantsJson(request)) return { ...summary(issue), html: issueArticle(issue.content).value };
      return reply.headers(archiveHeaders).send(page(issue.subject, issuePage(issue, newsletter), { newsletter, reading: true, indexable: true }));
    });

    app.get('/feed.xml', async (_request, reply) => {
      const issues = await listPublished(c.pool, { limit: FEED_SIZE });
      return reply
        .type('application/rss+xml; charset=utf-8')
        .header('cache-control', 'public, max-age=300')
        .header('x-content-type-options', 'nosniff')
        .send(issueFeed({ publicUrl, newsletter, issues, webUrl: (slug) => c.renderer.webUrl(slug) }));
    });
  };
}
