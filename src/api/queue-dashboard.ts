import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import type { Container } from '../container.js';
import { queueNames } from '../queues/index.js';
import { requireOperator } from './auth.js';
import { respondWithError } from './error-handler.js';

const descriptions: Record<string, string> = {
  [queueNames.readerMail]: 'confirmation, welcome and data-link mail to one reader',
  [queueNames.fanout]: 'one job per send: writes the message rows and feeds the deliver queue',
  [queueNames.deliver]: 'one job per message: claim, personalise, submit, record',
};

/**
 * bull-board for the operator: the service's queues (under this deployment's QUEUE_PREFIX) with
 * their counts and jobs. Mount it with a prefix, e.g. `{ prefix: '/admin/queues' }`.
 *
 * Every route of it (page, static assets, its JSON API) is behind the operator check: the token
 * as Bearer, or as the Basic password so a browser can log in, like /admin/mail.
 *
 * Read-only: the send's state lives in Postgres and is controlled through the editor API
 * (pause, resume, cancel); pausing, emptying or adding jobs here would act behind its back.
 */
export function queueDashboard(c: Container, check: (token: string) => boolean): FastifyPluginAsync {
  const guard = requireOperator(check);
  const respond = respondWithError(c.config.newsletterName);
  return async (app) => {
    // The 401 is answered here rather than thrown: a thrown error would reach bull-board's own
    // error handler (set in its scope), which has neither our error shape nor the HTML page.
    app.addHook('onRequest', async (request, reply) => {
      try {
        await guard(request, reply);
      } catch (err) {
        return respond(err as FastifyError, request, reply);
      }
    });

    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(app.prefix || '/');
    const queues = c.queues.all.map(
      (queue) =>
        new BullMQAdapter(queue as never, {
          readOnlyMode: true,
          description: `${descriptions[queue.name] ?? ''} (Redis keys ${c.config.queuePrefix}:${queue.name}:*)`.trim(),
        }),
    );
    createBullBoard({
      queues,
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Broadside queues', hideDocsLink: true } },
    });
    await app.register(serverAdapter.registerPlugin());
  };
}
