import type { Container } from '../container.js';
import { listUnsubscribeHeaders } from '../delivery/list-unsubscribe.js';
import type { ReaderMailJob } from '../queues/contract.js';
import { greetingFor } from '../rendering/issue.js';
import type { ReaderMailTemplates } from '../rendering/reader-mail.js';
import { findMailRecipient, type MailRecipient } from './queries.js';
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
  const reader = await findMailRecipient(c.pool, job.subscriberId);
  if (!reader) return 'not_needed';
  if (job.kind === 'confirmation' && reader.status === 'active') return 'not_needed';
  if (job.kind === 'welcome' && reader.status !== 'active') return 'not_needed';
  // Whatever the reader's status (data can be asked for after leaving), but a bounced address takes no mail.
  if (job.kind === 'data-link' && reader.status === 'bounced') return 'not_needed';
  const mime = prepared(c, await c.readerMail());
  const vars = readerVars(c, reader, job.kind, mime);
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

function readerVars(
  c: Pick<ReaderMailDeps, 'config' | 'links'>,
  reader: MailRecipient,
  kind: ReaderMailJob['kind'],
  mime: ReaderMailMime,
): Record<string, string> {
  const vars: Record<string, string> = {
    newsletter: c.config.newsletterName,
    greeting: greetingFor(reader.name),
    archive_url: c.links.archive(),
    postal_address: c.config.postalAddress ?? '',
    expires_hours: String(c.config.confirmTokenTtlHours),
  };
  // Each link is a signed token (an HMAC): made only when the kind's templates show it (the
  // bundled confirmation shows neither the unsubscribe nor the manage link), and the welcome's
  // unsubscribe link always, for its List-Unsubscribe header.
  if (mime.uses(kind, 'confirm_url')) vars.confirm_url = c.links.confirm(reader.id);
  if (kind === 'welcome' || mime.uses(kind, 'unsubscribe_url')) vars.unsubscribe_url = c.links.unsubscribe(reader.id);
  if (mime.uses(kind, 'manage_url')) vars.manage_url = c.links.manage(reader.id);
  // Only in the mail that carries it (the link opens the reader's data); made now, when the
  // mail is, so a job that waited for the relay still mails a link good for its whole lifetime.
  if (kind === 'data-link') {
    vars.data_url = c.links.data(reader.id);
    vars.expires_minutes = String(c.config.dataLinkTtlMinutes);
  }
  return vars;
}
