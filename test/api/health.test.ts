import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/api/app.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { loggerOptions } from '../../src/log.js';
import { useTestContext } from '../support/context.js';
import { captureLog } from '../support/log-capture.js';

const t = useTestContext();

type Line = { level: number; msg?: string; checks?: Record<string, string> };
const log = captureLog<Line>();

/** A port nothing listens on: taken, then given back. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// The same app over a Postgres that refuses connections: its error names a host and port.
let deadPort: number;
let deadPool: Pool;
let broken: FastifyInstance;
beforeAll(async () => {
  deadPort = await closedPort();
  deadPool = createPool(`postgres://postgres@127.0.0.1:${deadPort}/broadside`);
  broken = await buildApp({ ...t.c, pool: deadPool, log: pino(loggerOptions('info'), log.stream) });
  await broken.ready();
});
afterAll(async () => {
  await broken?.close();
  await deadPool?.end();
});

const readyz = (app: FastifyInstance, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/readyz', headers });

describe('GET /readyz', () => {
  it('answers 200 with every check ok when Postgres, Redis and the schema are usable', async () => {
    const res = await readyz(t.app);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok', migrations: 'ok' } });
  });

  it('tells an anonymous caller only which checks are unavailable, never an internal address or error', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-the-editor-token-123' }] as Record<string, string>[]) {
      const res = await readyz(broken, headers);
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', checks: { postgres: 'unavailable', redis: 'ok', migrations: 'unavailable' } });
      expect(res.body).not.toContain(String(deadPort));
      expect(res.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
    }
  });

  it("gives the editor's Bearer token the errors themselves", async () => {
    const res = await readyz(broken, t.auth);
    expect(res.statusCode).toBe(503);
    const { checks } = res.json() as { checks: Record<string, string> };
    expect(checks.postgres).toContain(`ECONNREFUSED 127.0.0.1:${deadPort}`);
    expect(checks.migrations).toContain('ECONNREFUSED');
    expect(checks.redis).toBe('ok');
  });

  it('always logs the errors of the failing checks, whoever asked', async () => {
    const before = log.lines().filter((l) => l.msg === 'not ready').length;
    await readyz(broken);
    const lines = log.lines().filter((l) => l.msg === 'not ready');
    expect(lines).toHaveLength(before + 1);
    expect(lines.at(-1)).toMatchObject({ level: 40, checks: { postgres: expect.stringContaining(`127.0.0.1:${deadPort}`) } });
    expect(lines.at(-1)!.checks).not.toHaveProperty('redis');
  });
});
