import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * One access line per request, written when the answer has gone: `request completed` (or
 * `request errored`, at error level) with the request (id, method, masked URL: the logger's `req`
 * serializer), the status and the time. Fastify's default writes a second line as each request
 * arrives ("incoming request"), which on a prepared public page cost as much CPU as the rest of
 * our own work for the request: a long request says when it began itself (the CSV import does).
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
