import { issueArticle } from './archive-pages.js';
import type { IssueSummaryRow } from './queries.js';

// Written by hand rather than with the `feed` package: its XML writer (xml-js) escapes only the
// first "]]>" in a CDATA section, so a subject with two of them broke the whole feed. Plain
// escaped text has no such edge, and RSS 2.0 is a handful of elements.

/** XML 1.0 forbids these characters outright; escaping cannot carry them. */
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

function xmlText(value: string): string {
  return value.replace(XML_FORBIDDEN, '').replace(/[&<>"]/g, (c) => XML_ESCAPES[c]!);
}

const element = (name: string, value: string, attrs = '') => `<${name}${attrs}>${xmlText(value)}</${name}>`;

/** RSS 2.0 of the latest published issues, each with its full web version as content. */
export function issueFeed(o: { publicUrl: string; newsletter: string; issues: IssueSummaryRow[]; webUrl: (slug: string) => string }): string {
  const archive = `${o.publicUrl}/issues`;
  const items = o.issues.map((i) => {
    const link = o.webUrl(i.slug);
    return [
      '<item>',
      element('title', i.subject),
      element('link', link),
      element('guid', link, ' isPermaLink="true"'),
      element('pubDate', i.published_at!.toUTCString()),
      i.preheader ? element('description', i.preheader) : '',
      element('content:encoded', issueArticle(i.content).value),
      '</item>',
    ].join('\n');
  });
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:atom="http://www.w3.org/2005/Atom">',
    '<channel>',
    element('title', o.newsletter),
    element('link', archive),
    element('description', `Past issues of ${o.newsletter}`),
    element('language', 'en'),
    element('generator', 'Broadside'),
    `<atom:link href="${xmlText(`${o.publicUrl}/feed.xml`)}" rel="self" type="application/rss+xml"/>`,
    o.issues[0] ? element('lastBuildDate', o.issues[0].published_at!.toUTCString()) : '',
    ...items,
    '</channel>',
    '</rss>',
    '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}
