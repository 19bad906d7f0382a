import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { EditorSessions, SESSION_COOKIE } from '../../src/editor/session.js';
import { createTestContext, TEST_TOKEN, type TestContext, useTestContext } from '../support/context.js';

const t = useTestContext();

const HOUR = 3600_000;

/** The session cookie's value and attributes from a Set-Cookie header. */
function setCookieOf(res: LightMyRequestResponse): { value: string; attributes: string[] } {
  const header = res.headers['set-cookie'];
  const line = [header].flat().find((l) => l?.startsWith(`${SESSION_COOKIE}=`));
  if (!line) throw new Error(`no ${SESSION_COOKIE} cookie in ${JSON.stringify(header)}`);
  const [pair, ...attributes] = line.split(';').map((s) => s.trim());
  return { value: pair!.slice(SESSION_COOKIE.length + 1), attributes };
}

async function signIn(ctx: TestContext = t, token = TEST_TOKEN) {
  const res = await ctx.app.inject({ method: 'POST', url: '/api/session', payload: { token } });
  expect(res.statusCode).toBe(200);
  const { value } = setCookieOf(res);
  return { cookie: `${SESSION_COOKIE}=${value}`, value, csrfToken: res.json().csrfToken as string, res };
}

const issueCount = async () => Number((await t.c.pool.query('SELECT count(*) FROM issues')).rows[0].count);
const newIssue = { subject: 'Made with the session', markdown: 'Hello **readers**.' };

describe('signing in to the editor', () => {
  it('a wrong token is a 401 in words, and sets no cookie', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/session', payload: { token: `${TEST_TOKEN}x` } });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('not the API token') } });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.body).not.toContain(TEST_TOKEN);
  });

  it('the right token opens a session: an HttpOnly, SameSite=Strict cookie for EDITOR_SESSION_HOURS (12), not Secure over http', async () => {
    const before = Date.now();
    const { res, csrfToken } = await signIn();
    const { attributes } = setCookieOf(res);
    expect(attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Strict']));
    expect(attributes).not.toContain('Secure');
    const expires = new Date(attributes.find((a) => a.startsWith('Expires='))!.slice('Expires='.length)).getTime();
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 12 * HOUR - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 12 * HOUR);
    expect(res.json()).toEqual({ csrfToken, expiresAt: new Date(expires).toISOString() });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('the session reads the API, and with its CSRF header changes it', async () => {
    const { cookie, csrfToken } = await signIn();
    const list = await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie } });
    expect(list.statusCode).toBe(200);
    const created = await t.app.inject({ method: 'POST', url: '/api/issues', headers: { cookie, 'x-csrf-token': csrfToken }, payload: newIssue });
    expect(created.statusCode).toBe(201);
    // A reloaded app asks for its CSRF token again: the same one, bound to the session.
    const again = await t.app.inject({ method: 'GET', url: '/api/session', headers: { cookie } });
    expect(again.statusCode).toBe(200);
    expect(again.json().csrfToken).toBe(csrfToken);
  });

  it('a cross-site form post with the session cookie is refused: 403 csrf_failed, nothing changes', async () => {
    const { cookie } = await signIn();
    const before = await issueCount();
    // What a page on another site can make a browser send: a form, the cookie, no custom header.
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/issues',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      payload: 'subject=Pwned&markdown=pwned',
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: { code: 'csrf_failed', message: expect.stringContaining('x-csrf-token') } });
    // JSON without the header, and a DELETE, fare no better.
    const json = await t.app.inject({ method: 'POST', url: '/api/issues', headers: { cookie }, payload: newIssue });
    expect(json.statusCode).toBe(403);
    expect(await issueCount()).toBe(before);
  });

  it("another session's CSRF token, or a made-up one, does not pass", async () => {
    const mine = await signIn();
    const other = await signIn();
    expect(other.csrfToken).not.toBe(mine.csrfToken);
    for (const token of [other.csrfToken, 'A'.repeat(43), '', 'short']) {
      const res = await t.app.inject({ method: 'POST', url: '/api/issues', headers: { cookie: mine.cookie, 'x-csrf-token': token }, payload: newIssue });
      expect([token, res.statusCode, res.json().error.code]).toEqual([token, 403, 'csrf_failed']);
    }
  });

  it('the bearer token keeps working for scripts, with no CSRF header', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/issues', headers: t.auth, payload: newIssue });
    expect(res.statusCode).toBe(201);
    // A wrong bearer token is refused even beside a good cookie: the caller meant the token.
    const { cookie } = await signIn();
    const wrong = await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie, authorization: 'Bearer wrong-token-0123456789' } });
    expect(wrong.statusCode).toBe(401);
  });

  it('a tampered, expired or foreign cookie is no session: 401', async () => {
    const { value } = await signIn();
    const [id, expires, signature] = value.split('.') as [string, string, string];
    const far = String(Number(expires) + 3600 * 24 * 365);
    const sessions = (secret: string, token: string) => new EditorSessions(secret, token, t.c.redis, t.config.queuePrefix, 12);
    const expired = sessions(t.config.secret, TEST_TOKEN).open(new Date(Date.now() - 12 * HOUR - 1000)).cookie;
    const otherSecret = sessions('another-secret-that-is-long-enough-0123456789', TEST_TOKEN).open().cookie;
    const otherToken = sessions(t.config.secret, 'a-rotated-api-token-0123456789').open().cookie;
    for (const [what, bad] of [
      ['a later expiry with the old signature', `${id}.${far}.${signature}`],
      ['expired (signed 12 hours and a second ago)', expired],
      ['signed with another SECRET', otherSecret],
      ['made before the API token changed', otherToken],
      ['garbage', 'x.y.z'],
    ]) {
      const res = await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie: `${SESSION_COOKIE}=${bad}` } });
      expect([what, res.statusCode]).toEqual([what, 401]);
      const session = await t.app.inject({ method: 'GET', url: '/api/session', headers: { cookie: `${SESSION_COOKIE}=${bad}` } });
      expect([what, session.statusCode]).toEqual([what, 401]);
    }
  });

  it('survives a restart: a new process (a new EditorSessions with the same SECRET) accepts the cookie', async () => {
    const { value } = await signIn();
    const fresh = new EditorSessions(t.config.secret, TEST_TOKEN, t.c.redis, t.config.queuePrefix, 12);
    await expect(fresh.verify(value)).resolves.toEqual({ id: value.split('.')[0], expiresAt: expect.any(Date) });
  });

  it('sign-out ends the session on every copy of the cookie, and clears it', async () => {
    const { cookie, csrfToken } = await signIn();
    // Signing out needs the CSRF header too: a cross-site page cannot sign the editor out.
    const forged = await t.app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie } });
    expect(forged.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie } })).statusCode).toBe(200);

    const out = await t.app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie, 'x-csrf-token': csrfToken } });
    expect(out.statusCode).toBe(204);
    const cleared = setCookieOf(out);
    expect(cleared.value).toBe('');
    expect(cleared.attributes).toEqual(expect.arrayContaining(['Max-Age=0', 'HttpOnly', 'SameSite=Strict']));
    // A copy of the cookie kept elsewhere is worth nothing now.
    expect((await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie } })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/api/session', headers: { cookie } })).statusCode).toBe(401);
    // Signing out again, or with no session at all, only clears the cookie.
    expect((await t.app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie } })).statusCode).toBe(204);
  });
});

describe('with PUBLIC_URL on https, EDITOR_SESSION_HOURS=2 and SIGNIN_RATE_LIMIT=3', () => {
  let h: TestContext;
  beforeAll(async () => {
    h = await createTestContext({ env: { PUBLIC_URL: 'https://news.example', EDITOR_SESSION_HOURS: '2', SIGNIN_RATE_LIMIT: '3' } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('the cookie is Secure and lasts 2 hours', async () => {
    const { res } = await signIn(h);
    const { attributes } = setCookieOf(res);
    expect(attributes).toContain('Secure');
    const expires = new Date(res.json().expiresAt).getTime();
    expect(expires - Date.now()).toBeGreaterThan(2 * HOUR - 5000);
    expect(expires - Date.now()).toBeLessThanOrEqual(2 * HOUR);
  });

  it('sign-in attempts are limited per address, right or wrong: the 4th in the window is a 429 with Retry-After', async () => {
    const attempt = (ip: string, token: string) => h.app.inject({ method: 'POST', url: '/api/session', payload: { token }, remoteAddress: ip });
    expect((await attempt('192.0.2.10', 'wrong-one-0123456789')).statusCode).toBe(401);
    expect((await attempt('192.0.2.10', 'wrong-two-0123456789')).statusCode).toBe(401);
    expect((await attempt('192.0.2.10', TEST_TOKEN)).statusCode).toBe(200);
    const limited = await attempt('192.0.2.10', TEST_TOKEN);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Another address has its own count.
    expect((await attempt('192.0.2.11', TEST_TOKEN)).statusCode).toBe(200);
  });
});
