import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { escapeHtml } from '../web/escape.js';
import type { IssueContent } from './markdown.js';
import { type MediaSizeLookup, type MediaWeight, mediaWarnings, mediaWeight } from './media-weight.js';
import { compileMjml } from './mjml.js';
import { bindTemplate, fill, parseTemplate, type Template } from './template.js';

/** What the editor writes. */
export type IssueSource = { subject: string; preheader: string; markdown: string; slug: string };

/** An issue ready to personalise: content parsed once, MJML compiled once. */
export type CompiledIssue = {
  content: IssueContent;
  html: Template;
  text: Template;
  /** Size of the HTML part with sample personalisation, in bytes (Gmail clips above 102 KB). */
  htmlBytes: number;
};

/** Values filled in for each reader (and for the preview, with sample values). */
export type IssueReaderVars = {
  newsletter: string;
  issue_date: string;
  greeting: string;
  unsubscribe_url: string;
  manage_url: string;
  postal_address: string;
};

export type PersonalisedIssue = { html: string; text: string };

/** Gmail hides the rest of a message whose HTML passes 102 KB behind "[Message clipped]". */
export const GMAIL_CLIP_BYTES = 102 * 1024;

/**
 * Braces in editor content become entities, so nothing an editor writes is taken for a reader
 * slot when the compiled HTML is scanned for `{{name}}`.
 */
const neutraliseBraces = (html: string) => html.replace(/[{}]/g, (c) => (c === '{' ? '&#123;' : '&#125;'));
const escapeForMjml = (text: string) => neutraliseBraces(escapeHtml(text));

export type IssueTemplateFiles = { mjml: string; section: string; text: string; mjmlPath: string };

export async function loadIssueTemplateFiles(dir: string): Promise<IssueTemplateFiles> {
  const mjmlPath = path.join(dir, 'issue.mjml');
  const [mjml, section, text] = await Promise.all([
    readFile(mjmlPath, 'utf8'),
    readFile(path.join(dir, 'issue-section.mjml'), 'utf8'),
    readFile(path.join(dir, 'issue.txt'), 'utf8'),
  ]);
  return { mjml, section, text, mjmlPath };
}

/** Turns an issue's Markdown into the compiled email, HTML and text, with reader slots left open. */
export class IssueRenderer {
  /** `mediaSize` measures the uploaded images an issue shows (its size warning counts them). */
  constructor(
    private readonly files: IssueTemplateFiles,
    private readonly publicUrl: string,
    private readonly mediaSize?: MediaSizeLookup,
  ) {}

  webUrl(slug: string): string {
    return `${this.publicUrl}/issues/${encodeURIComponent(slug)}`;
  }

  async compile(source: IssueSource): Promise<CompiledIssue> {
    // Loaded on first use, like MJML: a delivering worker reads compiled issues only.
    const [{ renderMarkdown }, { htmlToPlainText, underlined }] = await Promise.all([import('./markdown.js'), import('./plain-text.js')]);
    const rendered = renderMarkdown(source.markdown);
    const media = this.mediaSize ? await mediaWeight(this.publicUrl, [rendered.intro, ...rendered.sections.map((s) => s.html)], this.mediaSize) : undefined;
    const content: IssueContent = media ? { ...rendered, media } : rendered;
    const webUrl = this.webUrl(source.slug);
    const signupUrl = `${this.publicUrl}/`;

    const introText = htmlToPlainText(content.intro);
    // Without a preheader, mail clients show the first words of the body as the preview line;
    // the intro's are better than "View in your browser".
    const preheader = source.preheader || excerpt(introText, 140);
    const tocHtml =
      content.sections.length === 0
        ? '<p>This issue has no sections.</p>'
        : `<ol>${content.sections.map((s) => `<li><a href="#${s.id}">${escapeHtml(s.title)}</a></li>`).join('')}</ol>`;
    const mjml = bindTemplate(this.files.mjml, {
      subject: escapeForMjml(source.subject),
      preheader: escapeForMjml(preheader),
      web_url: escapeHtml(webUrl),
      signup_url: escapeHtml(signupUrl),
      signup_url_text: escapeHtml(signupUrl.replace(/^https?:\/\//, '').replace(/\/$/, '')),
      intro: neutraliseBraces(content.intro),
      toc: neutraliseBraces(tocHtml),
      sections: content.sections.map((s) => bindTemplate(this.files.section, { section: neutraliseBraces(s.html) })).join(''),
    });
    const html = parseTemplate(await compileMjml(mjml, this.files.mjmlPath), true);

    const text = parseTemplate(this.files.text, false, {
      subject_underlined: underlined(source.subject, '='),
      web_url: webUrl,
      signup_url: signupUrl,
      intro: introText,
      toc: content.sections.map((s, i) => `${String(i + 1).padStart(2)}. ${s.title}`).join('\n'),
      sections: content.sections.map((s) => `\n\n${underlined(s.title, '-')}\n\n${htmlToPlainText(s.html.replace(/^<h2[^>]*>[\s\S]*?<\/h2>/, ''))}`).join(''),
    });

    const htmlBytes = Buffer.byteLength(fill(html, sampleReaderVars({ newsletter: 'Newsletter', publicUrl: this.publicUrl, postalAddress: '' })));
    return { content, html, text, htmlBytes };
  }
}

/** What the editor should know about a compiled issue before sending it. */
export function issueWarnings(htmlBytes: number, sectionCount: number, media?: MediaWeight): string[] {
  const warnings: string[] = [];
  if (htmlBytes > GMAIL_CLIP_BYTES) {
    warnings.push(`the HTML is ${(htmlBytes / 1024).toFixed(1)} KB; Gmail clips messages above 102 KB, so readers there will see "[Message clipped]"`);
  }
  if (sectionCount === 0) warnings.push('the issue has no "##" sections, so "Covered this week" is empty');
  warnings.push(...mediaWarnings(media));
  return warnings;
}

function excerpt(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if ([...flat].length <= max) return flat;
  return `${[...flat]
    .slice(0, max - 1)
    .join('')
    .replace(/\s+\S*$/, '')}…`;
}

/** Fills an issue's slots for one reader: two joins over the compiled parts. */
export function personalise(issue: Pick<CompiledIssue, 'html' | 'text'>, vars: IssueReaderVars): PersonalisedIssue {
  return { html: fill(issue.html, vars), text: fill(issue.text, vars) };
}

/** The values a preview or a test copy shows: a named sample reader whose links lead nowhere. */
export function sampleReaderVars(o: { newsletter: string; publicUrl: string; postalAddress: string; name?: string }, date = new Date()): IssueReaderVars {
  const { publicUrl } = o;
  return {
    newsletter: o.newsletter,
    issue_date: formatIssueDate(date),
    greeting: greetingFor(o.name ?? 'Sample Reader'),
    unsubscribe_url: `${publicUrl}/unsubscribe/sample`,
    manage_url: `${publicUrl}/manage/sample`,
    postal_address: o.postalAddress,
  };
}

/** The first line a reader sees: their name when we have one. */
export function greetingFor(name: string | null): string {
  return name ? `Hi ${name},` : 'Hi,';
}

export function formatIssueDate(date: Date): string {
  return date.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
}
