import { Redis } from 'ioredis';

// The Redis keys of one queue prefix (a test file's, a benchmark run's): listed, removed at the
// end, or lost at once as a fault. No jest import here, so the benchmarks use it too.

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function withRedis<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(REDIS_URL);
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** Every key under `prefix:`, by SCAN (other clients' commands run in between). */
export async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

/** Removes every key under `prefix:` (clean-up once nothing uses the prefix any more). */
export function deleteKeys(prefix: string): Promise<void> {
  return withRedis(async (redis) => {
    const keys = await keysOf(redis, prefix);
    for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
  });
}

/**
 * Deletes every Redis key of a queue prefix in one step, as a FLUSHDB or a restart without
 * persistence loses them: SCAN and DEL run inside one script, so no worker command lands
 * between them. (A SCAN + DEL loop from a client, interleaved with the workers, is a different,
 * partial loss: see the crash test of ids left without jobs.) `match` narrows it to some of the
 * keys. Returns how many were deleted.
 */
export function loseRedisKeys(prefix: string, match = '*'): Promise<number> {
  return withRedis(async (redis) => {
    const deleted = await redis.eval(
      `local cursor, n = '0', 0
       repeat
         local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
         cursor = r[1]
         for _, key in ipairs(r[2]) do n = n + redis.call('DEL', key) end
       until cursor == '0'
       return n`,
      0,
      `${prefix}:${match}`,
    );
    return Number(deleted);
  });
}
