import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import Type from 'typebox';
import type { Container } from '../container.js';
import { notFound } from '../errors.js';
import { sendPage } from '../api/respond.js';
import { html } from '../web/html.js';
import { listCaptured, readCaptured } from './mail-store.js';

export const captureDir = (c: Container) => path.resolve(c.config.dataDir, 'mail');

/**
 * The operator's inbox for the built-in capture server: every message the service "sent" while
 * no SMTP_URL was set. Registered behind the operator check (token as Bearer or Basic password).
 */
export function captureRoutes(c: Container): FastifyPluginAsync {
  const Params = Type.Object({ id: Type.String({ pattern: '^\\d{14}-[0-9a-f]{8}$' }) });
  return async (app) => {
    app.get('/admin/mail', async (_request, reply) => {
      const items = await listCaptured(captureDir(c));
      return sendPage(reply, 200, 'Captured mail', html`
<h1>Captured mail</h1>
<p class="muted">${c.config.smtpUrl ? 'SMTP_URL is set: mail goes to the relay, and this list only shows what was captured before.' : 'No SMTP_URL is set, so mail is stored here instead of delivered.'} Newest first.</p>
${items.length === 0 ? html`<p>No messages yet.</p>` : html`<table>
<thead><tr><th>When</th><th>To</th><th>Subject</th></tr></thead>
<tbody>${items.map((m) => html`<tr><td>${m.date.replace('T', ' ').slice(0, 19)}</td><td>${m.to}</td><td><a href="/admin/mail/${m.id}">${m.subject}</a></td></tr>`)}</tbody>
</table>`}`);
    });

    app.get('/admin/mail/:id', { schema: { params: Params } }, async (request, reply) => {
      const m = await readCaptured(captureDir(c), (request.params as { id: string }).id);
      if (!m) throw notFound('message');
      return sendPage(reply, 200, m.subject, html`
<p><a href="/admin/mail">← All captured mail</a></p>
<h1>${m.subject}</h1>
<dl><dt>From</dt><dd>${m.from}</dd><dt>To</dt><dd>${m.to}</dd><dt>Date</dt><dd>${m.date}</dd></dl>
<p><a href="/admin/mail/${m.id}/html">HTML part</a> · <a href="/admin/mail/${m.id}/raw">Raw message</a></p>
<h2>Text part</h2>
<pre style="white-space:pre-wrap">${m.text}</pre>
<h2>Headers</h2>
<dl>${m.headers.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`);
    });

    app.get('/admin/mail/:id/html', { schema: { params: Params } }, async (request, reply) => {
      const m = await readCaptured(captureDir(c), (request.params as { id: string }).id);
      if (!m?.html) throw notFound('HTML part');
      // Shown as the reader's client would, but with scripts and forms disabled by policy.
      return reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; sandbox")
        .send(m.html);
    });

    app.get('/admin/mail/:id/raw', { schema: { params: Params } }, async (request, reply) => {
      const m = await readCaptured(captureDir(c), (request.params as { id: string }).id);
      if (!m) throw notFound('message');
      return reply.type('text/plain; charset=utf-8').send(m.raw);
    });
  };
}
