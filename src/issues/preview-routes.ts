import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Container } from '../container.js';
import { AppError, notFound } from '../errors.js';
import { ErrorSchema, IdParams } from '../http/schemas.js';
import { personalise } from '../rendering/issue.js';
import { html, SafeHtml } from '../web/html.js';
import { page, pageHeaders } from '../web/layout.js';
import { PreviewLinkError, PreviewLinks } from './preview-links.js';
import { findIssue } from './queries.js';
import { previewVars } from './test-send.js';

const PreviewLinkSchema = Type.Object({
  url: Type.String({ description: 'opens the preview in a browser, without the API token; share it only with whoever may read the draft' }),
  expiresAt: Type.String({ format: 'date-time' }),
});

const VIEWS = { desktop: 'Desktop', phone: 'Phone' } as const;
const FORMATS = { html: 'HTML', text: 'Text' } as const;
type View = keyof typeof VIEWS;
type Format = keyof typeof FORMATS;

const PageQuery = Type.Object({
  view: Type.Optional(Type.Enum(Object.keys(VIEWS) as View[], { default: 'desktop' })),
  format: Type.Optional(Type.Enum(Object.keys(FORMATS) as Format[], { default: 'html' })),
});
const TokenParams = Type.Object({ token: Type.String({ maxLength: 64 }) });

/**
 * The preview page runs no script and loads nothing of its own from anywhere: its style is
 * inline. The email is shown in a sandboxed iframe (srcdoc: no scripts, no forms, no same-origin
 * access, links do not navigate), which shares this policy: its images may come from wherever
 * the editor's Markdown points (as in a reader's inbox), nothing else may load. No referrer is
 * sent, so those image hosts never see the link.
 */
const PAGE_CSP =
  "default-src 'none'; img-src 'self' https: http: data:; style-src 'unsafe-inline'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const WIDTH: Record<View, string> = { desktop: '100%', phone: '375px' };

const STYLE = new SafeHtml(`
.switches { display:flex; flex-wrap:wrap; gap:.5rem 1.5rem; margin:1rem 0; }
.switches ul { display:flex; gap:.25rem; list-style:none; margin:0; padding:0; }
.switches a { display:inline-block; min-height:44px; padding:.6rem 1rem; border:1px solid var(--accent); border-radius:6px; text-decoration:none; }
.switches a[aria-current="page"] { background:var(--accent); color:var(--card); font-weight:600; }
.switches .label { align-self:center; color:var(--muted); }
.frame { margin:0 auto; max-width:100%; }
.frame iframe { display:block; width:100%; height:75vh; border:1px solid var(--line); border-radius:6px; background:#fff; }
.frame pre { white-space:pre-wrap; overflow-wrap:anywhere; font:14px/1.5 ui-monospace,Menlo,Consolas,monospace; background:var(--bg); color:var(--fg); padding:1rem; border:1px solid var(--line); border-radius:6px; margin:0; }
`);

/** POST /api/issues/:id/preview-link: register inside the editor's bearer scope. */
export function previewLinkApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  const links = new PreviewLinks(c.config.secret, c.config.publicUrl, c.config.previewLinkTtlMinutes);
  return async (app) => {
    app.post(
      '/api/issues/:id/preview-link',
      {
        schema: {
          tags: ['issues'],
          description:
            "A short-lived signed link (PREVIEW_LINK_TTL_MINUTES, 60 by default) to the issue's preview in a browser: desktop and phone " +
            'width, HTML and text. The link holds no API token and opens only this issue, read-only.',
          params: IdParams,
          response: { 200: PreviewLinkSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!(await findIssue(c.pool, id))) throw notFound('issue');
        const link = links.create(id);
        request.log.info({ issueId: id, expiresAt: link.expiresAt }, 'preview link made');
        return { url: link.url, expiresAt: link.expiresAt.toISOString() };
      },
    );
  };
}

/** GET /preview/<token>: the public page a preview link opens. */
export function previewPageRoutes(c: Container): FastifyPluginAsyncTypebox {
  const links = new PreviewLinks(c.config.secret, c.config.publicUrl, c.config.previewLinkTtlMinutes);
  return async (app) => {
    app.get(
      '/preview/:token',
      {
        schema: {
          tags: ['issues'],
          description:
            "An issue's preview as an HTML page, opened with a link from POST /api/issues/:id/preview-link: the email as a reader receives it " +
            '(personalised for a sample reader) at desktop or phone width (`view`), or its text part (`format=text`).',
          params: TokenParams,
          querystring: PageQuery,
          response: {
            200: { description: 'the preview page', content: { 'text/html': { schema: Type.String() } } },
            403: { ...ErrorSchema, description: '`preview_link_invalid`: not a link we signed (an HTML page for a browser)' },
            404: { ...ErrorSchema, description: '`not_found`: the issue has been deleted' },
            410: { ...ErrorSchema, description: '`preview_link_expired`: ask for a new link' },
          },
        },
      },
      async (request, reply) => {
        let opened: { issueId: number; expiresAt: Date };
        try {
          opened = links.verify(request.params.token);
        } catch (err) {
          if (!(err instanceof PreviewLinkError)) throw err;
          if (err.reason === 'expired') {
            throw new AppError(410, 'preview_link_expired', 'This preview link has expired. Ask for a new one: "broadside preview <issue>" prints it.');
          }
          throw new AppError(403, 'preview_link_invalid', 'This preview link is not valid: it may have been cut short or changed. Ask for a new one.');
        }
        const row = await findIssue(c.pool, opened.issueId);
        if (!row) throw notFound('issue');
        const until = `${opened.expiresAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
        const view: View = request.query.view ?? 'desktop';
        const format: Format = request.query.format ?? 'html';
        const body = personalise({ html: row.html_template, text: row.text_template }, previewVars(c, row));
        const here = `/preview/${encodeURIComponent(request.params.token)}`;
        const link = (v: View, f: Format) => `${here}?view=${v}&format=${f}`;
        const switchList = <T extends string>(label: string, items: Record<T, string>, current: T, href: (k: T) => string) => html`
<span class="label" id="${label.toLowerCase()}-label">${label}</span>
<ul aria-labelledby="${label.toLowerCase()}-label">${(Object.keys(items) as T[]).map(
          (k) => html`<li><a href="${href(k)}"${k === current ? new SafeHtml(' aria-current="page"') : ''}>${items[k]}</a></li>`,
        )}</ul>`;
        const shown =
          format === 'html'
            ? html`<iframe title="The email as a reader receives it (${VIEWS[view]} width)" sandbox="" referrerpolicy="no-referrer" srcdoc="${body.html}"></iframe>`
            : html`<pre aria-label="The text part of the email">${body.text}</pre>`;
        const content = html`<style>${STYLE}</style>
<h1>Preview: ${row.subject}</h1>
<p class="muted">${row.state.charAt(0).toUpperCase()}${row.state.slice(1)} · as a sample reader receives it · this link works until ${until}</p>
<dl><dt>Subject</dt><dd>${row.subject}</dd><dt>Preheader</dt><dd>${row.preheader || '(none: the first words of the intro)'}</dd></dl>
<nav class="switches" aria-label="Preview options">
<div class="switches">${switchList('Width', VIEWS, view, (v) => link(v, format))}</div>
<div class="switches">${switchList('Version', FORMATS, format, (f) => link(view, f))}</div>
</nav>
<div class="frame" style="width:${WIDTH[view]}">${shown}</div>`;
        return reply
          .code(200)
          .headers({ ...pageHeaders, 'content-security-policy': PAGE_CSP, 'x-robots-tag': 'noindex' })
          .send(page(`Preview: ${row.subject}`, content, { wide: true, newsletter: c.config.newsletterName || undefined }));
      },
    );
  };
}
