// Request bodies have a deadline of their own (HTTP_BODY_TIMEOUT_SECONDS), set by the app on its
// server and lifted by a route that takes long uploads (the editor's CSV import) once it knows who
// is uploading. Here, not with the server's options, because routes use it too.
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export const TIMED_OUT = { status: 408, code: 'request_timeout', message: 'the request did not arrive in time' };

/** An error answer written straight to the socket (no route is answering), in our error shape. */
export function rawError(socket: Socket, e: { status: number; code: string; message: string }): void {
  if (!socket.writable) return;
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  socket.write(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The pending body deadline of each request that has one (see boundRequestBodies). */
const bodyDeadlines = new WeakMap<IncomingMessage, NodeJS.Timeout>();

/**
 * Every request body must have arrived within `timeoutSeconds` of its headers, or the connection
 * is closed (with a 408 if nothing was answered yet). Node's own bound (requestTimeout) is the
 * CSV import's hour, which the sign-up form must not get. Hooked on the raw server, so it covers
 * every request: routes, 404s, URLs the router refuses, and bodies still arriving after an early
 * answer (a 401 to a stranger's upload), which Node reads on to keep the connection alive.
 */
export function boundRequestBodies(server: Server, timeoutSeconds: number): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return;
    const timer = setTimeout(() => {
      bodyDeadlines.delete(req);
      if (req.complete || req.socket.destroyed) return;
      if (!res.headersSent) rawError(req.socket, TIMED_OUT);
      req.socket.destroy();
    }, timeoutSeconds * 1000);
    timer.unref();
    bodyDeadlines.set(req, timer);
    const done = () => {
      clearTimeout(timer);
      bodyDeadlines.delete(req);
    };
    req.once('end', done);
    req.once('close', done);
  });
}

/**
 * Lifts the body deadline of one request, leaving Node's requestTimeout
 * (HTTP_UPLOAD_TIMEOUT_SECONDS): for the editor's CSV import, once its token has been checked.
 */
export function allowLongUpload(req: IncomingMessage): void {
  clearTimeout(bodyDeadlines.get(req));
  bodyDeadlines.delete(req);
}
