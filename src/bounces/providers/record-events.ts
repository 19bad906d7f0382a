import type { Container } from '../../container.js';
import { checkEmail } from '../../subscribers/email-address.js';
import { matchAddress, matchToken, type Match } from '../queries.js';
import { recordBounce } from '../record.js';
import type { ProviderEvent } from './event-parsing.js';

export type ProviderEventTally = {
  /** Events of a bounce kind the request carried. */
  received: number;
  recorded: number;
  /** Already recorded (a redelivery): nothing changed. */
  duplicates: number;
  /** Recorded without a reader: kept for the editor to see. */
  unmatched: number;
};

/**
 * The reader an event is about: our signed token when the provider echoed it (names the very
 * message), else the recipient's address. Matching by address is allowed here and only here
 * because the caller has authenticated the provider; mail to the bounce listener never is.
 */
async function matchProviderEvent(c: Pick<Container, 'pool' | 'messageTokens'>, e: ProviderEvent): Promise<Match | null> {
  const byToken = await matchToken(c.pool, c.messageTokens, [{ token: e.messageToken, matchedBy: 'token' }]);
  if (byToken) return byToken;
  const checked = e.recipient ? checkEmail(e.recipient) : null;
  return checked?.ok ? matchAddress(c.pool, checked.normalized) : null;
}

/**
 * Records verified provider events, one statement each (bounce row and suppression policy
 * together). Once only per (provider, eventId): a redelivered event counts as a duplicate.
 * Sequential on purpose: two events for one reader in a batch apply in the provider's order.
 */
export async function recordProviderEvents(
  c: Pick<Container, 'pool' | 'messageTokens' | 'config' | 'metrics'>,
  events: readonly ProviderEvent[],
): Promise<ProviderEventTally> {
  const tally: ProviderEventTally = { received: events.length, recorded: 0, duplicates: 0, unmatched: 0 };
  for (const e of events) {
    const match = await matchProviderEvent(c, e);
    const recorded = await recordBounce(c, {
      type: e.type,
      source: e.provider,
      match,
      recipient: e.recipient,
      status: e.status,
      diagnostic: e.diagnostic,
      eventId: e.eventId,
      occurredAt: e.occurredAt,
    });
    if (!recorded) {
      tally.duplicates++;
      continue;
    }
    tally.recorded++;
    if (!match) tally.unmatched++;
  }
  return tally;
}
