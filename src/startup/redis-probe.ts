// One connection to REDIS_URL that either works (with the server's version and eviction policy)
// or says why not. ioredis reports the reason (refused, NOAUTH, WRONGPASS…) only as an 'error'
// event and then rejects with "Connection is closed.", and a server that does not speak Redis
// leaves its connect() pending forever: this probe keeps the first error and bounds the wait.
import { Redis } from 'ioredis';
import { redactUrl } from '../config/index.js';
import { networkCode, networkReason, StartupError, UNREACHABLE } from './startup-error.js';

export type RedisProbe = { ok: true; version: string; maxmemoryPolicy: string | undefined } | { ok: false; error: Error };

export async function probeRedis(url: string, timeoutMs = 5000): Promise<RedisProbe> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // One attempt: a start-up check wants the reason, not a retry loop.
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  let first: Error | undefined;
  redis.on('error', (err: Error) => {
    first ??= err;
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    await Promise.race([redis.connect(), deadline]);
    // INFO rather than CONFIG GET: managed Redis services often disable CONFIG.
    const info = await Promise.race([redis.info(), deadline]);
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    return { ok: true, version: field('redis_version') ?? field('valkey_version') ?? 'unknown', maxmemoryPolicy: field('maxmemory_policy') };
  } catch (err) {
    return { ok: false, error: first ?? (err as Error) };
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** `host:port` of a Redis URL. */
export function redisServer(url: string): string {
  const u = new URL(url);
  return `${u.hostname || '127.0.0.1'}:${u.port || '6379'}`;
}

/** Why the probe failed, as the start-up failure naming REDIS_URL. */
export function explainRedisFailure(url: string, error: Error): StartupError {
  const server = redisServer(url);
  const setting = `REDIS_URL=${redactUrl(url)}`;
  const code = networkCode(error);
  const message = error.message.replace(/\s+/g, ' ').trim();
  if (code && UNREACHABLE.has(code)) {
    return new StartupError([
      `Cannot start: no Redis answers at ${server} (${networkReason(code, message)}).`,
      `${setting}. Start Redis (the README's quick start says how), or point REDIS_URL at where it runs.`,
    ]);
  }
  if (/^NOAUTH\b/.test(message)) {
    return new StartupError([
      `Cannot start: Redis at ${server} wants a password and REDIS_URL has none.`,
      `${setting}. Put it in REDIS_URL: redis://:PASSWORD@${server} (or redis://USER:PASSWORD@${server} with an ACL user).`,
    ]);
  }
  if (/^WRONGPASS\b/.test(message)) {
    return new StartupError([
      `Cannot start: Redis at ${server} refused the user name or password in REDIS_URL.`,
      `${setting}. Check the password (and the user, for an ACL user) in REDIS_URL.`,
    ]);
  }
  if (message === 'Connection is closed.') {
    // ioredis's words for a server that hung up before answering (too many clients, a TLS port
    // spoken to in plain text, or not Redis at all).
    return new StartupError([
      `Cannot start: the server at ${server} closed the connection without answering as Redis does.`,
      `${setting}. Check that Redis runs there and accepts this client (maxclients, protected-mode; rediss:// for TLS).`,
    ]);
  }
  if (/^no answer within/.test(message)) {
    return new StartupError([
      `Cannot start: the server at ${server} did not answer as Redis does (${message}).`,
      `${setting}. Check that REDIS_URL points at Redis (6.2 or later), not at another service.`,
    ]);
  }
  // The server answered with an error of its own (max clients reached, loading, a proxy's refusal).
  return new StartupError([
    `Cannot start: Redis at ${server} refused the connection: ${message}.`,
    `${setting}. Check the Redis server at that address (its log says more).`,
  ]);
}

/**
 * BullMQ keeps every job in Redis: a policy that evicts keys under memory pressure silently loses
 * jobs (or their dedup ids, which would send twice). Undefined when the policy is fine or unknown.
 */
export function evictionWarning(policy: string | undefined): string | undefined {
  if (policy === undefined || policy === 'noeviction') return undefined;
  return `Redis's maxmemory-policy is ${policy}, not noeviction: under memory pressure Redis will evict BullMQ's keys and jobs are lost. Set maxmemory-policy noeviction (redis.conf, or redis-cli CONFIG SET maxmemory-policy noeviction).`;
}
