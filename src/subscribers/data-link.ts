import type { FastifyBaseLogger } from 'fastify';
import type { Container } from '../container.js';
import { AppError } from '../errors.js';
import { readerMailJobId } from '../queues/contract.js';
import { releaseDataLinkSlot, requestDataLink } from './queries.js';

/**
 * Someone holding the reader's manage link asked for a link to their data: queue one mail to
 * the reader's own address, unless one went out within the resend window. The caller answers
 * the same way whatever happened: the holder of a forwarded link learns nothing from it.
 */
export async function requestDataLinkMail(c: Pick<Container, 'pool' | 'queues'>, log: FastifyBaseLogger, subscriberId: number): Promise<void> {
  const slot = await requestDataLink(c.pool, subscriberId);
  if (!slot) {
    log.info({ subscriberId }, 'data link: none sent (one sent recently, bounced, or no such reader)');
    return;
  }
  const job = { kind: 'data-link' as const, subscriberId };
  try {
    await c.queues.readerMail.add('data-link', job, { jobId: readerMailJobId(job, slot.data_link_sent_at.getTime()) });
  } catch (err) {
    // Without the job the reader would wait out the window for nothing: give the slot back.
    await releaseDataLinkSlot(c.pool, subscriberId, slot.data_link_sent_at);
    log.error({ err, subscriberId }, 'could not queue a data link');
    throw new AppError(503, 'unavailable', 'the service cannot send links right now; please try again shortly');
  }
  log.info({ subscriberId }, 'data link queued');
}
