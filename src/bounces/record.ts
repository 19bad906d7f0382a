import type { Container } from '../container.js';
import { writeBounce, type BounceInput, type Recorded } from './queries.js';

/**
 * Records one bounce with the configured policy (SOFT_BOUNCE_LIMIT, SOFT_BOUNCE_WINDOW_DAYS) and
 * counts it: every way a bounce reaches us (refusal at submission, listener, webhook) goes here.
 */
export async function recordBounce(c: Pick<Container, 'pool' | 'config' | 'metrics'>, input: BounceInput): Promise<Recorded | undefined> {
  const r = await writeBounce(c.pool, input, c.config);
  if (r) c.metrics.bounceRecorded(input.type, input.source, input.match !== null);
  return r;
}
