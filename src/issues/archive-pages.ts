import { formatIssueDate } from '../rendering/issue.js';
import type { IssueContent } from '../rendering/markdown.js';
import { html, SafeHtml } from '../web/html.js';
import type { IssueSummaryRow } from './queries.js';

/**
 * The body of an issue's web version: intro, "Covered this week" and the sections, from the
 * sanitised HTML stored with the issue. No reader's name or token is in it: anyone may read it.
 */
export function issueArticle(content: IssueContent): SafeHtml {
  return html`<div class="issue">
${new SafeHtml(content.intro)}
${
  content.sections.length > 0
    ? html`<nav class="toc" aria-labelledby="covered-this-week">
<h2 id="covered-this-week">Covered this week</h2>
<ol>${content.sections.map((s) => html`<li><a href="#${s.id}">${s.title}</a></li>`)}</ol>
</nav>`
    : ''
}
${content.sections.map((s) => html`<section>${new SafeHtml(s.html)}</section>\n`)}
</div>`;
}

export function issuePage(issue: IssueSummaryRow, newsletter: string): SafeHtml {
  return html`<p class="muted"><a href="/issues">${newsletter} archive</a> · <time datetime="${issue.published_at!.toISOString()}">${formatIssueDate(issue.published_at!)}</time></p>
<h1>${issue.subject}</h1>
${issueArticle(issue.content)}
<hr>
<p><strong>Enjoyed this?</strong> <a href="/">Subscribe to ${newsletter}</a> to get the next issue by email, or forward this page to someone who would like it.</p>`;
}

export function archivePage(issues: IssueSummaryRow[], newsletter: string, olderHref: string | null): SafeHtml {
  return html`<h1>${newsletter}: past issues</h1>
<p><a href="/">Subscribe</a> to get the next one by email, or follow the <a href="/feed.xml">RSS feed</a>.</p>
${
  issues.length === 0
    ? html`<p>No issues have been published yet.</p>`
    : html`<ol class="archive" reversed>
${issues.map((i) => html`<li><a href="/issues/${i.slug}">${i.subject}</a><br><span class="muted"><time datetime="${i.published_at!.toISOString()}">${formatIssueDate(i.published_at!)}</time>${i.preheader ? html` · ${i.preheader}` : ''}</span></li>\n`)}
</ol>`
}
${olderHref ? html`<p><a href="${olderHref}" rel="next">Older issues</a></p>` : ''}`;
}

/** An issue's web version after the editor took it out of the archive (410 Gone). */
export function withdrawnPage(newsletter: string): SafeHtml {
  return html`<h1>This issue is no longer available</h1>
<p>The editor of ${newsletter} has taken it out of the archive.</p>
<p><a href="/issues">Past issues</a> · <a href="/">Subscribe</a></p>`;
}
