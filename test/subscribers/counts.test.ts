import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestContext, type TestContext } from '../support/context.js';

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
afterEach(() => t.assertNoLeaks());
afterAll(async () => {
  await t?.close();
});

const counts = () => t.app.inject({ method: 'GET', url: '/api/subscribers/counts', headers: t.auth });

describe('GET /api/subscribers/counts', () => {
  it('counts readers by status, every status present (0 when nobody has it), with the total', async () => {
    const empty = await counts();
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toEqual({ pending: 0, active: 0, unsubscribed: 0, bounced: 0, complained: 0, total: 0 });

    await t.c.pool.query(
      `INSERT INTO subscribers (email, email_normalized, status, consent_source)
       SELECT e, e, s::subscriber_status, 'api' FROM unnest($1::text[], $2::text[]) AS x(e, s)`,
      [
        ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com', 'e@example.com', 'f@example.com'],
        ['active', 'active', 'active', 'pending', 'bounced', 'unsubscribed'],
      ],
    );
    const res = await counts();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ pending: 1, active: 3, unsubscribed: 1, bounced: 1, complained: 0, total: 6 });
  });

  it('answers 401 without the token', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/subscribers/counts' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: 'unauthorized' } });
  });
});
