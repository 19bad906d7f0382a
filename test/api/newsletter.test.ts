import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestContext, type TestContext } from '../support/context.js';

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext({ env: { NEWSLETTER_NAME: 'Harbour Notes' } });
});
afterEach(() => t.assertNoLeaks());
afterAll(async () => {
  await t?.close();
});

describe('GET /api/newsletter', () => {
  it("answers the newsletter's name and the sender of its mail, from MAIL_FROM", async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/newsletter', headers: t.auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'Harbour Notes', from: { name: 'The Test Letter', address: 'news@broadside.test' } });
  });

  it('a bare address has no display name', async () => {
    const bare = await createTestContext({ env: { MAIL_FROM: 'letters@broadside.test' } });
    try {
      const res = await bare.app.inject({ method: 'GET', url: '/api/newsletter', headers: bare.auth });
      expect(res.json()).toMatchObject({ from: { name: null, address: 'letters@broadside.test' } });
    } finally {
      await bare.close();
    }
  });

  it('answers 401 without the token', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/newsletter' });
    expect(res.statusCode).toBe(401);
  });
});
