import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

// Mailgun's signature covers its timestamp and a random token, not the body: anyone who saw one
// signed request could replay the signature with a body of their own while the timestamp is
// fresh. So each token is remembered with a hash of the body it came with. A token that returns
// with the same body is Mailgun (or a proxy) delivering again, which the once-only event id makes
// harmless; with another body it is a replay.

export type TokenUse = 'first' | 'again' | 'replay';

// Atomic: between a GET and a SET two concurrent requests could both see "first".
const CLAIM = `local old = redis.call('GET', KEYS[1])
if old then return old end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false`;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Remembers `token` with the body's hash for `ttlSeconds`, which must cover the whole window in
 * which its timestamp is accepted: twice the tolerance, since clocks may drift either way.
 */
export async function useSignatureToken(redis: Redis, keyPrefix: string, token: string, body: Buffer, ttlSeconds: number): Promise<TokenUse> {
  const digest = sha256(body);
  const old = (await redis.eval(CLAIM, 1, `${keyPrefix}:${sha256(token)}`, digest, String(ttlSeconds))) as string | null;
  if (old === null) return 'first';
  return old === digest ? 'again' : 'replay';
}
