import type { Container } from '../container.js';
import { listUnsubscribeHeaders } from '../delivery/list-unsubscribe.js';
import type { ReaderMailJob } from '../queues/contract.js';
import { greetingFor } from '../rendering/issue.js';
import type { ReaderMailTemplates } from '../rendering/reader-mail.js';
import { findSubscriber, type SubscriberRow } from './queries.js';
import { ReaderMailMime } from './reader-mail-mime.js';

/** `not_needed`: the reader is gone, or their status makes this mail pointless (a confirmation for an active reader). */
/** What sending one reader mail touches: the reader's row, the templates, links and the mailer. */
type ReaderMailDeps = Pick<Container, 'pool' | 'config' | 'links' | 'mailer' | 'readerMail'>;

export type ReaderMailOutcome = 'submitted' | 'not_needed';

/**
 * Sends one confirmation, welcome or data-link email. The job carries only the subscriber id;
 * the row is read again here so an erased, confirmed or unsubscribed reader gets nothing stale.
 */
export async function sendReaderMail(c: ReaderMailDeps, job: ReaderMailJob): Promise<ReaderMailOutcome> {
  const reader = await findSubscriber(c.pool, job.subscriberId);
  if (!reader) return 'not_needed';
  if (job.kind === 'confirmation' && reader.status === 'active') return 'not_needed';
  if (job.kind === 'welcome' && reader.status !== 'active') return 'not_needed';
  // Whatever the reader's status (data can be asked for after leaving), but a bounced address takes no mail.
  if (job.kind === 'data-link' && reader.status === 'bounced') return 'not_needed';
  const vars = readerVars(c, reader, job.kind);
  const mime = prepared(c, await c.readerMail());
  // Of these, only the welcome mail is list mail: the confirmation goes to someone not yet on
  // the list, and the data link answers the reader's own request.
  const headers = job.kind === 'welcome' ? listUnsubscribeHeaders(vars.unsubscribe_url!) : {};
  await c.mailer.sendRaw(mime.build(job.kind, { to: reader.email, vars, headers }));
  return 'submitted';
}

/** Each process's templates, encoded as MIME once (the container loads them once). */
const preparedMime = new WeakMap<ReaderMailTemplates, ReaderMailMime>();

function prepared(c: Pick<ReaderMailDeps, 'config' | 'links'>, templates: ReaderMailTemplates): ReaderMailMime {
  let mime = preparedMime.get(templates);
  if (!mime) {
    mime = new ReaderMailMime(templates, c.config, {
      newsletter: c.config.newsletterName,
      archive_url: c.links.archive(),
      postal_address: c.config.postalAddress ?? '',
      expires_hours: String(c.config.confirmTokenTtlHours),
      expires_minutes: String(c.config.dataLinkTtlMinutes),
    });
    preparedMime.set(templates, mime);
  }
  return mime;
}

function readerVars(c: Pick<ReaderMailDeps, 'config' | 'links'>, reader: SubscriberRow, kind: ReaderMailJob['kind']): Record<string, string> {
  return {
    newsletter: c.config.newsletterName,
    greeting: greetingFor(reader.name),
    confirm_url: c.links.confirm(reader.id),
    unsubscribe_url: c.links.unsubscribe(reader.id),
    manage_url: c.links.manage(reader.id),
    archive_url: c.links.archive(),
    postal_address: c.config.postalAddress ?? '',
    expires_hours: String(c.config.confirmTokenTtlHours),
    // Only in the mail that carries it (the link opens the reader's data); made now, when the
    // mail is, so a job that waited for the relay still mails a link good for its whole lifetime.
    ...(kind === 'data-link' ? { data_url: c.links.data(reader.id), expires_minutes: String(c.config.dataLinkTtlMinutes) } : {}),
  };
}
