import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import path from 'node:path';
import type { FastifyReply } from 'fastify';
import markdownIt from 'markdown-it';
import Type from 'typebox';
import type { Container } from '../container.js';
import { notFound } from '../errors.js';
import { html, type SafeHtml } from '../web/html.js';
import { page, pageHeaders } from '../web/layout.js';
import { CapturedMail } from './mail-store.js';

export const captureDir = (c: Container) => path.resolve(c.config.dataDir, 'mail');

const PAGE_SIZE = 50;

/**
 * The HTML part is the reader's mail, not ours: it is shown in a frame that runs no script and
 * submits no form, on a page with no cookie to steal. Its links must still work (a newcomer
 * clicks through the confirmation here): every link opens a new tab (`<base target="_blank">`,
 * added below), and that tab escapes the sandbox, so the page it opens (our confirm page, with
 * its form) works as in a mail client. Buttons MJML marks target=_blank do the same; a link to
 * `_top` may replace the viewer on a click.
 */
const FRAME_SANDBOX = 'allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation';
const htmlPartHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'self'; base-uri 'none'; sandbox ${FRAME_SANDBOX}`,
  'x-content-type-options': 'nosniff',
  // The links lead to other sites (and to reader tokens on ours): they learn nothing of the viewer.
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
/** The message page frames its HTML part (same origin); the rest of the page policy stays. */
const messagePageHeaders = {
  ...pageHeaders,
  'content-security-policy': `${pageHeaders['content-security-policy']}; frame-src 'self'`,
};

const VIEWER_STYLE = html`<style>
.mail-search { display:flex; gap:.5rem; align-items:end; flex-wrap:wrap; margin:0 0 1rem; }
.mail-search label { margin:0; flex:1 1 16rem; }
.mail-search input { margin-top:.25rem; width:100%; font:inherit; padding:.5rem .65rem; border:1px solid var(--muted); border-radius:6px; background:var(--card); color:var(--fg); }
.mail-search button { margin:0; }
.mail-table td { overflow-wrap:anywhere; }
.html-part { width:100%; height:75vh; border:1px solid var(--line); border-radius:6px; background:#fff; }
.text-part { white-space:pre-wrap; overflow-wrap:anywhere; background:var(--bg); padding:.75rem; border-radius:6px; }
.pager { display:flex; gap:1.5rem; }
</style>`;

const IdParams = Type.Object({ id: Type.String({ pattern: '^\\d{14}-[0-9a-f]{8}$' }) });
const ListQuery = Type.Object({
  q: Type.Optional(Type.String({ maxLength: 200, description: 'part of a recipient or subject' })),
  before: Type.Optional(Type.String({ pattern: '^\\d{14}-[0-9a-f]{8}$', description: 'the "older" cursor of the previous page' })),
});

// Finds URLs in the text part (the text part spells every link out); only http and https become links.
const linkify = markdownIt().linkify.set({ fuzzyLink: false, fuzzyEmail: false });

/** The text part with its web addresses as links (opening a new tab), everything else escaped. */
export function linkifiedText(text: string): SafeHtml {
  const parts: (string | SafeHtml)[] = [];
  let at = 0;
  for (const m of linkify.match(text) ?? []) {
    if (m.schema !== 'http:' && m.schema !== 'https:') continue;
    parts.push(text.slice(at, m.index), html`<a href="${m.url}" target="_blank" rel="noreferrer">${m.raw}</a>`);
    at = m.lastIndex;
  }
  parts.push(text.slice(at));
  return html`${parts}`;
}

/** The captured HTML with a `<base target="_blank">` first in its head, so every link opens a new tab. */
export function withLinksInNewTabs(markup: string): string {
  const base = '<base target="_blank">';
  const head = /<head(\s[^>]*)?>/i.exec(markup);
  if (head) return markup.slice(0, head.index + head[0].length) + base + markup.slice(head.index + head[0].length);
  return base + markup;
}

function sendViewerPage(reply: FastifyReply, title: string, body: SafeHtml, headers: Record<string, string> = pageHeaders) {
  return reply
    .code(200)
    .headers(headers)
    .send(page(title, html`${VIEWER_STYLE}${body}`, { wide: true }));
}

/**
 * The operator's inbox for the built-in capture server: every message the service "sent" while
 * no SMTP_URL was set. Registered behind the operator check (token as Bearer or Basic password).
 */
export function captureRoutes(c: Container): FastifyPluginAsyncTypebox {
  const mail = new CapturedMail(captureDir(c));
  return async (app) => {
    app.get('/admin/mail', { schema: { querystring: ListQuery } }, async (request, reply) => {
      const { q = '', before } = request.query;
      const found = await mail.page({ search: q, before, limit: PAGE_SIZE });
      const search = q.trim();
      const query = (extra: Record<string, string>) => `/admin/mail?${new URLSearchParams({ ...(search ? { q: search } : {}), ...extra })}`.replace(/\?$/, '');
      return sendViewerPage(
        reply,
        'Captured mail',
        html`
<h1>Captured mail</h1>
<p class="muted">${c.config.smtpUrl ? 'SMTP_URL is set: mail goes to the relay, and this list only shows what was captured before.' : 'No SMTP_URL is set, so mail is stored here instead of delivered.'} Newest first, ${PAGE_SIZE} a page.</p>
<form class="mail-search" method="get" action="/admin/mail" role="search">
<label for="q">Search recipient or subject<input type="search" id="q" name="q" value="${search}" maxlength="200"></label>
<button type="submit">Search</button>
</form>
<p>${search ? `${found.matching} message${found.matching === 1 ? '' : 's'} match “${search}”.` : `${found.matching} message${found.matching === 1 ? '' : 's'}.`}${search ? html` <a href="/admin/mail">Show all</a>` : ''}</p>
${
  found.items.length === 0
    ? html`<p>${before ? 'No older messages.' : search ? 'Nothing matches.' : 'No messages yet.'}</p>`
    : html`<table class="mail-table">
<thead><tr><th scope="col">When (UTC)</th><th scope="col">To</th><th scope="col">Subject</th></tr></thead>
<tbody>${found.items.map((m) => html`<tr><td>${m.date.replace('T', ' ').slice(0, 19)}</td><td>${m.to}</td><td><a href="/admin/mail/${m.id}">${m.subject}</a></td></tr>`)}</tbody>
</table>`
}
<nav class="pager" aria-label="Pages">${before ? html`<a href="${query({})}">Newest messages</a>` : ''}${found.older ? html`<a href="${query({ before: found.older })}">Older messages</a>` : ''}</nav>`,
      );
    });

    app.get('/admin/mail/:id', { schema: { params: IdParams } }, async (request, reply) => {
      const { id } = request.params;
      const m = await mail.read(id);
      if (!m) throw notFound('message');
      return sendViewerPage(
        reply,
        m.subject,
        html`
<p><a href="/admin/mail">← All captured mail</a></p>
<h1>${m.subject}</h1>
<dl><dt>From</dt><dd>${m.from}</dd><dt>To</dt><dd>${m.to}</dd><dt>Date</dt><dd>${m.date}</dd></dl>
<p><a href="/admin/mail/${m.id}/message.eml" download="${m.id}.eml">Download .eml</a> · <a href="/admin/mail/${m.id}/raw">Raw message</a>${m.html ? html` · <a href="/admin/mail/${m.id}/html" target="_blank" rel="noreferrer">HTML part in a new tab</a>` : ''}</p>
${
  m.html
    ? html`<h2>HTML part</h2>
<p class="muted">As a mail client shows it: no scripts, no forms; links and buttons open in a new tab.</p>
<iframe class="html-part" title="HTML part" src="/admin/mail/${m.id}/html" sandbox="${FRAME_SANDBOX}" referrerpolicy="no-referrer"></iframe>`
    : ''
}
<h2>Text part</h2>
<pre class="text-part">${linkifiedText(m.text)}</pre>
<h2>Headers</h2>
<dl>${m.headers.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`,
        messagePageHeaders,
      );
    });

    app.get('/admin/mail/:id/html', { schema: { params: IdParams } }, async (request, reply) => {
      const m = await mail.read(request.params.id);
      if (!m?.html) throw notFound('HTML part');
      return reply.headers(htmlPartHeaders).send(withLinksInNewTabs(m.html));
    });

    app.get('/admin/mail/:id/message.eml', { schema: { params: IdParams } }, async (request, reply) => {
      const { id } = request.params;
      const raw = await mail.raw(id);
      if (!raw) throw notFound('message');
      return reply
        .type('message/rfc822')
        .header('content-disposition', `attachment; filename="${id}.eml"`)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-store')
        .send(raw);
    });

    app.get('/admin/mail/:id/raw', { schema: { params: IdParams } }, async (request, reply) => {
      const raw = await mail.raw(request.params.id);
      if (!raw) throw notFound('message');
      return reply.type('text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(raw);
    });
  };
}
