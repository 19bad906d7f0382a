import { isIP } from 'node:net';
import type { Container } from '../container.js';
import { AppError } from '../errors.js';
import { readerMailJobId } from '../queues/contract.js';
import { maskEmail } from '../log.js';
import type { FastifyBaseLogger } from 'fastify';
import { checkEmail, cleanName } from './email-address.js';
import { requestSubscription, releaseConfirmationSlot, type Evidence } from './queries.js';

export type SignupInput = { email?: string; name?: string; website?: string };
export type SignupResult = { ok: true } | { ok: false; reason: string };

/**
 * The whole sign-up decision, shared by the form and the JSON route so both get the same
 * protection. The caller answers the same way whatever happened (no enumeration): the result
 * only says whether the input was acceptable.
 */
export async function signUp(
  c: Pick<Container, 'pool' | 'queues' | 'metrics'>,
  log: FastifyBaseLogger,
  input: SignupInput,
  evidence: Evidence,
): Promise<SignupResult> {
  if (input.website) {
    // The honeypot was filled: a bot. Answer as if all went well, do nothing.
    log.info({ honeypot: true }, 'sign-up dropped');
    c.metrics.signupIgnored('honeypot');
    return { ok: true };
  }
  const checked = checkEmail(input.email);
  if (!checked.ok) return { ok: false, reason: checked.reason };
  const row = await requestSubscription(c.pool, {
    email: checked.email,
    normalized: checked.normalized,
    name: cleanName(input.name),
    evidence,
  });
  if (!row) {
    log.info({ email: maskEmail(checked.normalized) }, 'sign-up: no confirmation sent (active, or one sent recently)');
    c.metrics.signupIgnored('unchanged');
    return { ok: true };
  }
  const job = { kind: 'confirmation' as const, subscriberId: row.id };
  try {
    await c.queues.readerMail.add('confirmation', job, { jobId: readerMailJobId(job, row.confirmation_sent_at.getTime()) });
  } catch (err) {
    // Without the job the reader would wait ten minutes for nothing: give the slot back.
    await releaseConfirmationSlot(c.pool, row.id, row.confirmation_sent_at);
    log.error({ err, subscriberId: row.id }, 'could not queue a confirmation');
    throw new AppError(503, 'unavailable', 'the service cannot take sign-ups right now; please try again shortly');
  }
  log.info({ email: maskEmail(checked.normalized), subscriberId: row.id }, 'sign-up: confirmation queued');
  c.metrics.signup();
  return { ok: true };
}

/**
 * Consent evidence from a request; the user agent is capped, it is stored. Behind a trusted
 * proxy `ip` comes from X-Forwarded-For, which a client can fill with anything: only a plain
 * IP address (the inet column takes no IPv6 zone) is kept.
 */
export function evidenceOf(req: { ip: string; headers: Record<string, string | string[] | undefined> }): Evidence {
  const ua = req.headers['user-agent'];
  const ip = req.ip && isIP(req.ip) !== 0 && !req.ip.includes('%') ? req.ip : null;
  return { ip, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null };
}
