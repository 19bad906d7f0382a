import type { Container } from '../container.js';
import type { ReaderMailJob } from '../queues/contract.js';
import { greetingFor } from '../rendering/issue.js';
import { renderReaderMail } from '../rendering/reader-mail.js';
import { findSubscriber, type SubscriberRow } from './queries.js';

export type ReaderMailOutcome = 'submitted' | 'skipped';

/**
 * Sends one confirmation or welcome email. The job carries only the subscriber id; the row is
 * read again here so an erased, confirmed or unsubscribed reader gets nothing stale.
 */
export async function sendReaderMail(c: Container, job: ReaderMailJob): Promise<ReaderMailOutcome> {
  const reader = await findSubscriber(c.pool, job.subscriberId);
  if (!reader) return 'skipped';
  if (job.kind === 'confirmation' && reader.status === 'active') return 'skipped';
  if (job.kind === 'welcome' && reader.status !== 'active') return 'skipped';
  const vars = readerVars(c, reader);
  const mail = renderReaderMail(await c.readerMail(), job.kind, vars);
  const headers: Record<string, string> = {};
  if (job.kind === 'welcome') {
    headers['List-Unsubscribe'] = `<${vars.unsubscribe_url}>`;
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  await c.mailer.send({ to: reader.email, ...mail, headers });
  return 'submitted';
}

function readerVars(c: Container, reader: SubscriberRow): Record<string, string> {
  return {
    newsletter: c.config.newsletterName,
    greeting: greetingFor(reader.name),
    confirm_url: c.links.confirm(reader.id),
    unsubscribe_url: c.links.unsubscribe(reader.id),
    manage_url: c.links.manage(reader.id),
    archive_url: c.links.archive(),
    postal_address: c.config.postalAddress ?? '',
    expires_hours: String(c.config.confirmTokenTtlHours),
  };
}
