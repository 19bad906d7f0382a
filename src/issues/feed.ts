import { Feed } from 'feed';
import { issueArticle } from './archive-pages.js';
import type { IssueSummaryRow } from './queries.js';

/** RSS 2.0 of the latest published issues, each with its full web version as content. */
export function issueFeed(o: { publicUrl: string; newsletter: string; issues: IssueSummaryRow[] }): string {
  const feed = new Feed({
    title: o.newsletter,
    id: `${o.publicUrl}/issues`,
    link: `${o.publicUrl}/issues`,
    description: `Past issues of ${o.newsletter}`,
    language: 'en',
    updated: o.issues[0]?.published_at ?? undefined,
    generator: 'Broadside',
    feedLinks: { rss: `${o.publicUrl}/feed.xml` },
  });
  for (const i of o.issues) {
    const link = `${o.publicUrl}/issues/${i.slug}`;
    feed.addItem({
      title: i.subject,
      id: link,
      link,
      date: i.published_at!,
      description: i.preheader || undefined,
      content: issueArticle(i.content).value,
    });
  }
  return feed.rss2();
}
