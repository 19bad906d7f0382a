import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * One access line per request, written when the answer has gone: `request completed` (or
 * `request errored`, at error level) with the request (id, method, masked URL: the logger's `req`
 * serializer), the status and the time. Fastify's default writes a second line as each request
 * arrives ("incoming request"), which on a prepared public page cost as much CPU as the rest of
 * our own work for the request: a long request says when it began itself (the CSV import does).
 */
export class AccessLog extends LogController {
  /** Requests routed whose access line is not written yet. */
  private open = 0;
  private whenSettled: (() => void)[] = [];

  override incomingRequest(): void {
    this.open++;
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    this.open = Math.max(0, this.open - 1);
    if (!this.isLogDisabled(request)) {
      if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
      else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
    if (this.open === 0) for (const settle of this.whenSettled.splice(0)) settle();
  }

  /**
   * Resolves once every routed request's access line is written, or after `maxMs` (a request
   * whose connection was cut may never get one). On shutdown the server can have closed an
   * instant before the last response's hooks ran: its line still comes before "stopped".
   */
  settled(maxMs: number): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.whenSettled.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
