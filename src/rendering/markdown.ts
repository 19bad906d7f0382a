import slugify from '@sindresorhus/slugify';
import markdownIt from 'markdown-it';
import type { Token } from 'markdown-it';
import sanitizeHtml from 'sanitize-html';
import type { MediaWeight } from './media-weight.js';

/** One `##` section of an issue: its anchor id and its heading as plain text. */
export type Section = { id: string; title: string; html: string };

/**
 * An issue's Markdown as sanitised HTML: the part before the first `##`, then each section; and
 * `media`, the images of our own store it shows, measured when it was saved (absent: none).
 */
export type IssueContent = { intro: string; sections: Section[]; media?: MediaWeight };

// CommonMark, plus the two GitHub extensions the editor expects: pipe tables and bare-URL
// autolinks (and ~~strikethrough~~, which comes with GitHub's dialect).
const md = markdownIt('commonmark', { html: true, linkify: true }).enable(['table', 'strikethrough', 'linkify']);
// Like GitHub, link bare "www." addresses too, but not every bare domain: "README.md" is a file.
md.linkify.set({ fuzzyLink: true });
const linkifyMatch = md.linkify.match.bind(md.linkify);
md.linkify.match = (text) => (linkifyMatch(text) ?? []).filter((m) => m.schema !== '' || /^www\./i.test(m.raw));

const ALIGN = [/^(?:left|right|center)$/];

// Raw HTML is allowed in Markdown (editors paste embeds and <sup>), so the rendered result goes
// through an allow-list: no script, style, form, iframe or event handler survives, only http(s)
// and mailto links, and no inline style other than table-cell alignment, so nothing the editor
// writes can restyle or break the email's layout.
const SANITIZE: sanitizeHtml.IOptions = {
  allowedTags: [
    'h1',
    'h2',
    'h3',
    'h4',
    'h5',
    'h6',
    'p',
    'br',
    'hr',
    'blockquote',
    'pre',
    'code',
    'ul',
    'ol',
    'li',
    'strong',
    'b',
    'em',
    'i',
    'del',
    's',
    'sup',
    'sub',
    'small',
    'mark',
    'abbr',
    'a',
    'img',
    'table',
    'thead',
    'tbody',
    'tr',
    'th',
    'td',
    'caption',
    'figure',
    'figcaption',
    'dl',
    'dt',
    'dd',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'rel'],
    img: ['src', 'alt', 'title', 'width', 'height'],
    ol: ['start'],
    abbr: ['title'],
    th: ['style', 'colspan', 'rowspan'],
    td: ['style', 'colspan', 'rowspan'],
  },
  allowedStyles: { th: { 'text-align': ALIGN }, td: { 'text-align': ALIGN } },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['http', 'https'] },
  allowProtocolRelative: false,
  // The contents of dropped containers such as <script> or <style> are dropped with them.
  nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'iframe', 'object', 'embed', 'form', 'select', 'template', 'svg', 'math'],
  // An image in an email needs an absolute http(s) address; a relative one shows as broken.
  exclusiveFilter: (frame) => frame.tag === 'img' && !/^https?:\/\//i.test(frame.attribs.src ?? ''),
  transformTags: {
    // Links open outside the mail client and tell the target nothing about where they came from.
    a: (tagName, attribs) => ({ tagName, attribs: attribs.href?.startsWith('#') ? attribs : { ...attribs, rel: 'noopener' } }),
  },
};

/** Plain text of a heading's inline tokens: what the table of contents and the text part show. */
function plainText(inline: Token): string {
  let out = '';
  for (const t of inline.children ?? []) {
    if (t.type === 'text' || t.type === 'code_inline') out += t.content;
    else if (t.type === 'softbreak' || t.type === 'hardbreak' || (t.type === 'html_inline' && /^<br\b/i.test(t.content))) out += ' ';
    else if (t.type === 'image') out += t.content;
  }
  return out.replace(/\s+/g, ' ').trim();
}

/**
 * Renders an issue's Markdown. Every top-level `##` heading starts a section and gets a stable,
 * unique id (a slug of its text) so the table of contents can link to it.
 */
export function renderMarkdown(markdown: string): IssueContent {
  const env = {};
  const tokens = md.parse(markdown, env);
  // The table of contents' own heading has this id in the email.
  const taken = new Set<string>(['covered-this-week']);
  const chunks: { heading?: { id: string; title: string }; tokens: Token[] }[] = [{ tokens: [] }];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type === 'heading_open' && t.tag === 'h2' && t.level === 0) {
      const title = plainText(tokens[i + 1]!);
      const base = slugify(title) || 'section';
      let id = base;
      for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
      taken.add(id);
      chunks.push({ heading: { id, title }, tokens: [] });
    }
    chunks[chunks.length - 1]!.tokens.push(t);
  }
  const render = (ts: Token[]) => sanitizeHtml(md.renderer.render(ts, md.options, env), SANITIZE).trim();
  const [intro, ...rest] = chunks;
  return {
    intro: render(intro!.tokens),
    // The sanitiser keeps no id from the editor's HTML, so the section's own heading (always
    // first in its chunk) gets the only id, and every anchor in "Covered this week" is unique.
    sections: rest.map((c) => ({
      id: c.heading!.id,
      title: c.heading!.title || 'Untitled section',
      html: render(c.tokens).replace(/^<h2>/, `<h2 id="${c.heading!.id}">`),
    })),
  };
}
