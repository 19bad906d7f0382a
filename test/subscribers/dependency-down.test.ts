import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestContext, type TestContext } from '../support/context.js';

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});

describe('when Redis is unreachable', () => {
  it('refuses sign-ups with 503 and a Retry-After, writes nothing, and keeps the form a page', async () => {
    // The producer connection fails fast (enableOfflineQueue: false): cut it.
    t.c.redis.disconnect();
    const json = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'later@example.com' } });
    expect(json.statusCode).toBe(503);
    expect(json.headers['retry-after']).toBeDefined();
    expect(json.json().error.code).toBe('unavailable');

    const form = await t.app.inject({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'email=later%40example.com',
    });
    expect(form.statusCode).toBe(503);
    expect(form.headers['content-type']).toContain('text/html');

    const { rows } = await t.c.pool.query('SELECT count(*)::int AS n FROM subscribers');
    expect(rows[0].n).toBe(0);

    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.redis).not.toBe('ok');
    expect(ready.json().checks.postgres).toBe('ok');

    // Back again: the same process recovers without a restart.
    await t.c.redis.connect();
    const again = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'later@example.com' } });
    expect(again.statusCode).toBe(202);
  });
});
