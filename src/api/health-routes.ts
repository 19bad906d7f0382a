import { readdir } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { Container } from '../container.js';
import { migrationsDir, migrationsTable } from '../db/migrate.js';
import { presentsBearer } from './auth.js';

type Check = { name: string; ok: boolean; error?: string };

async function check(name: string, fn: () => Promise<unknown>): Promise<Check> {
  try {
    await fn();
    return { name, ok: true };
  } catch (err) {
    return { name, ok: false, error: (err as Error).message };
  }
}

/**
 * /healthz: the process answers. /readyz: Postgres, Redis and the schema are usable.
 *
 * /readyz is open (probes carry no token), so it tells a stranger only `ok` or `unavailable` per
 * check: an error such as "connect ECONNREFUSED 10.0.3.7:5432" maps the private network. The
 * editor's Bearer token gets the errors in the answer; the log always has them.
 */
export function healthRoutes(c: Container, isEditorToken: (token: string) => boolean): FastifyPluginAsync {
  return async (app) => {
    // The files on disk do not change while the process runs: list them once, not per probe.
    const files = (await readdir(migrationsDir)).filter((f) => /\.(sql|js|ts)$/.test(f)).map((f) => f.replace(/\.[^.]+$/, ''));
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (request, reply) => {
      const checks = await Promise.all([
        check('postgres', () => c.pool.query('SELECT 1')),
        check('redis', () => c.redis.ping()),
        check('migrations', async () => {
          const { rows } = await c.pool.query<{ name: string }>(`SELECT name FROM ${migrationsTable}`);
          const done = new Set(rows.map((r) => r.name));
          const pending = files.filter((f) => !done.has(f));
          if (pending.length) throw new Error(`pending migrations: ${pending.join(', ')}`);
        }),
      ]);
      const failing = checks.filter((x) => !x.ok);
      if (failing.length) {
        request.log.warn({ checks: Object.fromEntries(failing.map((x) => [x.name, x.error])) }, 'not ready');
      }
      const detailed = presentsBearer(request, isEditorToken);
      return reply.code(failing.length ? 503 : 200).send({
        status: failing.length ? 'unavailable' : 'ready',
        checks: Object.fromEntries(checks.map((x) => [x.name, x.ok ? 'ok' : detailed ? x.error : 'unavailable'])),
      });
    });
  };
}
