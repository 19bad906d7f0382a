import type { FastifyReply, FastifyRequest } from 'fastify';
import { html } from '../web/html.js';
import { page, pageHeaders } from '../web/layout.js';

/**
 * Reader routes answer browsers with HTML and programs with JSON. JSON when the path is under
 * /api or /webhooks, when the body was JSON, or when the client prefers JSON over HTML.
 */
export function wantsJson(request: FastifyRequest): boolean {
  const url = request.url;
  if (url.startsWith('/api/') || url === '/api' || url.startsWith('/webhooks/')) return true;
  const ctype = request.headers['content-type'] ?? '';
  if (/^application\/(?:[\w.+-]+\+)?json\b/i.test(ctype)) return true;
  const accept = request.headers.accept ?? '';
  if (!accept) return false;
  const jsonAt = accept.search(/application\/json|\+json/i);
  const htmlAt = accept.search(/text\/html/i);
  return jsonAt !== -1 && (htmlAt === -1 || jsonAt < htmlAt);
}

export function sendPage(reply: FastifyReply, status: number, title: string, body: ReturnType<typeof html>, newsletter?: string) {
  return reply
    .code(status)
    .headers(pageHeaders)
    .send(page(title, body, { newsletter }));
}

export function sendErrorPage(reply: FastifyReply, status: number, message: string, newsletter?: string) {
  const title = status === 404 ? 'Not found' : status === 429 ? 'Slow down' : status >= 500 ? 'Something went wrong' : 'That did not work';
  return sendPage(
    reply,
    status,
    title,
    html`<h1>${title}</h1><p class="error" role="alert">${message}</p><p><a href="/">Back to the sign-up page</a></p>`,
    newsletter,
  );
}
