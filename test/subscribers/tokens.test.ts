import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { InjectOptions } from 'fastify';
import { ReaderTokens, TokenError, type TokenPurpose } from '../../src/subscribers/reader-tokens.js';
import { createTestContext, type TestContext } from '../support/context.js';

const SECRET = 'unit-test-secret-that-is-long-enough-for-hmac';

/** Signs like ReaderTokens does, for ids and expiries its own sign() cannot produce. */
function forge(secret: string, prefix: string, purpose: TokenPurpose, id: string, exp: string): string {
  const sig = createHmac('sha256', secret).update(`broadside:${purpose}:${id}:${exp}`).digest().subarray(0, 16).toString('base64url');
  return `${prefix}.${id}.${exp}.${sig}`;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
  throw new Error('expected a TokenError');
}

/** Replaces one character of the signature with another valid base64url character. */
function flipSignature(token: string, at = 5): string {
  const i = token.lastIndexOf('.') + 1 + at;
  const c = token[i]!;
  return token.slice(0, i) + (c === 'A' ? 'B' : 'A') + token.slice(i + 1);
}

/** Replaces the id with the next one, leaving the signature as it was. */
function bumpId(token: string): string {
  const [p, id, exp, sig] = token.split('.');
  return [p, (parseInt(id!, 36) + 1).toString(36), exp, sig].join('.');
}

describe('ReaderTokens (unit)', () => {
  const tokens = new ReaderTokens(SECRET);
  const purposes: TokenPurpose[] = ['confirm', 'unsubscribe', 'manage', 'data'];
  const PREFIX: Record<TokenPurpose, string> = { confirm: 'c', unsubscribe: 'u', manage: 'm', data: 'd' };

  it.each(purposes)('signs and verifies a %s token', (purpose) => {
    const token = tokens.sign(purpose, 12345);
    expect(token).toMatch(/^[cumd]\.[0-9a-z]+\.0\.[A-Za-z0-9_-]{22}$/);
    expect(tokens.verify(purpose, token)).toBe(12345);
    // Deterministic: the link in an old email and a freshly built one are the same.
    expect(tokens.sign(purpose, 12345)).toBe(token);
  });

  it.each(purposes.flatMap((a) => purposes.filter((b) => b !== a).map((b) => [a, b])) as [TokenPurpose, TokenPurpose][])(
    'never accepts a %s token as a %s token',
    (signedFor, usedFor) => {
      const token = tokens.sign(signedFor, 7);
      expect(reasonOf(() => tokens.verify(usedFor, token))).toBe('malformed');
      // Swapping only the prefix does not help: the purpose is under the signature.
      const relabelled = PREFIX[usedFor] + token.slice(1);
      expect(reasonOf(() => tokens.verify(usedFor, relabelled))).toBe('bad_signature');
    },
  );

  it('refuses a token whose signature, id or expiry was changed', () => {
    const token = tokens.sign('confirm', 42, new Date(Date.now() + 3600_000));
    for (let at = 0; at < 22; at += 7) expect(reasonOf(() => tokens.verify('confirm', flipSignature(token, at)))).toBe('bad_signature');
    expect(reasonOf(() => tokens.verify('confirm', bumpId(token)))).toBe('bad_signature');
    const [p, id, , sig] = token.split('.');
    expect(reasonOf(() => tokens.verify('confirm', [p, id, '0', sig].join('.')))).toBe('bad_signature');
  });

  it('refuses a token signed with another secret', () => {
    const other = new ReaderTokens(`${SECRET}-rotated`);
    expect(reasonOf(() => tokens.verify('manage', other.sign('manage', 1)))).toBe('bad_signature');
  });

  it('expires a confirm token after its expiry and not before', () => {
    const expires = new Date('2030-01-01T00:00:00Z');
    const token = tokens.sign('confirm', 9, expires);
    expect(tokens.verify('confirm', token, new Date(expires.getTime() - 1000))).toBe(9);
    expect(tokens.verify('confirm', token, expires)).toBe(9);
    expect(reasonOf(() => tokens.verify('confirm', token, new Date(expires.getTime() + 1000)))).toBe('expired');
  });

  it('checks the signature before the expiry, so a forged token is never called "expired"', () => {
    const token = tokens.sign('confirm', 9, new Date('2020-01-01T00:00:00Z'));
    expect(reasonOf(() => tokens.verify('confirm', token))).toBe('expired');
    expect(reasonOf(() => tokens.verify('confirm', flipSignature(token)))).toBe('bad_signature');
  });

  it("expires a data token after its expiry: the link to a reader's data is short-lived", () => {
    const expires = new Date('2030-01-01T01:00:00Z');
    const token = tokens.sign('data', 9, expires);
    expect(tokens.verify('data', token, new Date(expires.getTime() - 1000))).toBe(9);
    expect(reasonOf(() => tokens.verify('data', token, new Date(expires.getTime() + 1000)))).toBe('expired');
  });

  it('keeps unsubscribe and manage tokens valid indefinitely', () => {
    const farFuture = new Date('2999-01-01T00:00:00Z');
    expect(tokens.verify('unsubscribe', tokens.sign('unsubscribe', 3), farFuture)).toBe(3);
    expect(tokens.verify('manage', tokens.sign('manage', 3), farFuture)).toBe(3);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'not-a-token'],
    ['only dots', '...'],
    ['three parts', 'c.1.0'],
    ['five parts', `${new ReaderTokens(SECRET).sign('confirm', 1)}.x`],
    ['an uppercase id', forge(SECRET, 'c', 'confirm', 'A', '0')],
    ['an empty id', 'c..0.AAAAAAAAAAAAAAAAAAAAAA'],
    ['a 13-digit id', `c.${'1'.repeat(13)}.0.AAAAAAAAAAAAAAAAAAAAAA`],
    ['a short signature', 'c.1.0.AAAA'],
    ['a long signature', `c.1.0.${'A'.repeat(23)}`],
    ['a signature with non-ASCII characters', `c.1.0.${'é'.repeat(22)}`],
    ['base64 padding in the signature', `c.1.0.${'A'.repeat(20)}==`],
    ['an overlong token', `c.1.0.${'A'.repeat(5000)}`],
    ['a right-to-left override', `c.1\u202E.0.${'A'.repeat(22)}`],
  ])('refuses %s as malformed', (_what, token) => {
    expect(reasonOf(() => tokens.verify('confirm', token))).toBe('malformed');
  });

  it('refuses a correctly signed id of 0 and one beyond the safe integer range', () => {
    expect(reasonOf(() => tokens.verify('manage', tokens.sign('manage', 0)))).toBe('malformed');
    expect(reasonOf(() => tokens.verify('manage', forge(SECRET, 'm', 'manage', 'zzzzzzzzzzzz', '0')))).toBe('malformed');
  });

  it('accepts exactly what it signs, for the largest safe id too', () => {
    const id = Number.MAX_SAFE_INTEGER;
    expect(tokens.verify('unsubscribe', tokens.sign('unsubscribe', id))).toBe(id);
    expect(forge(SECRET, 'u', 'unsubscribe', id.toString(36), '0')).toBe(tokens.sign('unsubscribe', id));
  });
});

describe('reader links with bad tokens', () => {
  let t: TestContext;
  let pendingId: number;

  beforeAll(async () => {
    t = await createTestContext();
    const res = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'pending@example.com' } });
    expect(res.statusCode).toBe(202);
    pendingId = Number((await t.c.pool.query(`SELECT id FROM subscribers WHERE email_normalized = 'pending@example.com'`)).rows[0].id);
  });
  afterEach(() => t.assertNoLeaks());
  afterAll(async () => {
    await t?.close();
  });

  async function state() {
    const { rows } = await t.c.pool.query('SELECT id, status, confirmed_at, unsubscribed_at, data_link_sent_at FROM subscribers ORDER BY id');
    const counts = await t.c.queues.readerMail.getJobCounts();
    return { rows, jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
  }

  const path = (purpose: TokenPurpose) => ({ confirm: '/confirm/', unsubscribe: '/unsubscribe/', manage: '/manage/', data: '/data/' })[purpose];

  type Route = { name: string; purpose: TokenPurpose; request: (token: string) => InjectOptions };
  const routes: Route[] = [
    { name: 'GET /confirm', purpose: 'confirm', request: (k) => ({ method: 'GET', url: `/confirm/${k}` }) },
    { name: 'POST /confirm', purpose: 'confirm', request: (k) => ({ method: 'POST', url: `/confirm/${k}` }) },
    { name: 'GET /unsubscribe', purpose: 'unsubscribe', request: (k) => ({ method: 'GET', url: `/unsubscribe/${k}` }) },
    {
      name: 'POST /unsubscribe (one-click)',
      purpose: 'unsubscribe',
      request: (k) => ({
        method: 'POST',
        url: `/unsubscribe/${k}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'List-Unsubscribe=One-Click',
      }),
    },
    { name: 'GET /manage', purpose: 'manage', request: (k) => ({ method: 'GET', url: `/manage/${k}` }) },
    { name: 'POST /manage/data-link', purpose: 'manage', request: (k) => ({ method: 'POST', url: `/manage/${k}/data-link` }) },
    { name: 'GET /manage/data.json', purpose: 'manage', request: (k) => ({ method: 'GET', url: `/manage/${k}/data.json` }) },
    {
      name: 'POST /manage/erase',
      purpose: 'manage',
      request: (k) => ({ method: 'POST', url: `/manage/${k}/erase`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'confirm=yes' }),
    },
    { name: 'GET /data', purpose: 'data', request: (k) => ({ method: 'GET', url: `/data/${k}` }) },
    { name: 'GET /data/data.json', purpose: 'data', request: (k) => ({ method: 'GET', url: `/data/${k}/data.json` }) },
    {
      name: 'POST /data/erase',
      purpose: 'data',
      request: (k) => ({ method: 'POST', url: `/data/${k}/erase`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'confirm=yes' }),
    },
  ];

  // For the data routes that is the permanent manage token, the one a forwarded email gives away.
  const other = (p: TokenPurpose): TokenPurpose => (p === 'manage' ? 'confirm' : 'manage');
  const expiring = (p: TokenPurpose) => p === 'confirm' || p === 'data';
  const valid = (p: TokenPurpose) => t.c.tokens.sign(p, pendingId, expiring(p) ? new Date(Date.now() + 3600_000) : undefined);

  const tamperings: [string, (p: TokenPurpose) => string][] = [
    ['a flipped signature character', (p) => flipSignature(valid(p))],
    ['a valid token for another purpose', (p) => valid(other(p))],
    ['the purpose prefix swapped', (p) => ({ confirm: 'u', unsubscribe: 'm', manage: 'd', data: 'm' })[p] + valid(p).slice(1)],
    ['another id under the same signature', (p) => bumpId(valid(p))],
    ['garbage', () => 'not-a-token'],
    ['percent-encoded control and bidi characters', () => '%0D%0A%E2%80%AE'],
    ['an overlong token (250 characters)', (p) => `${valid(p)}${'A'.repeat(250)}`.slice(0, 250)],
  ];

  const cases = routes.flatMap((r) => tamperings.map(([what, make]) => ({ name: `${r.name} with ${what}`, route: r, make })));

  it.each(cases)('$name: 400 page, 400 JSON, nothing changed', async ({ route, make }) => {
    const token = make(route.purpose);
    const before = await state();

    const page = await t.app.inject(route.request(token));
    expect(page.statusCode).toBe(400);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/role="alert">This link is not valid/);

    const asJson = route.request(token);
    const json = await t.app.inject({ ...asJson, headers: { ...(asJson.headers as Record<string, string>), accept: 'application/json' } });
    expect(json.statusCode).toBe(400);
    expect(json.json()).toEqual({ error: { code: 'invalid_token', message: expect.stringMatching(/not valid/) } });

    expect(await state()).toEqual(before);
  });

  it.each(routes)('$name with a token longer than the router allows: 4xx, nothing changed', async (route) => {
    const before = await state();
    const res = await t.app.inject(route.request(`${valid(route.purpose)}${'A'.repeat(2000)}`));
    // The router refuses path segments over maxParamLength before any route runs.
    expect(res.statusCode).toBe(414);
    expect(await state()).toEqual(before);
  });

  it.each(['GET', 'POST'] as const)('%s /confirm with an expired token: 410, still pending, no welcome queued', async (method) => {
    const before = await state();
    const expired = t.c.links.confirm(pendingId, new Date(Date.now() - (t.config.confirmTokenTtlHours + 1) * 3600_000));
    const token = expired.slice(expired.lastIndexOf('/') + 1);

    const page = await t.app.inject({ method, url: `/confirm/${token}` });
    expect(page.statusCode).toBe(410);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/role="alert">This link has expired/);

    const json = await t.app.inject({ method, url: `/confirm/${token}`, headers: { accept: 'application/json' } });
    expect(json.statusCode).toBe(410);
    expect(json.json()).toEqual({ error: { code: 'token_expired', message: expect.stringMatching(/expired/) } });

    expect(await state()).toEqual(before);
    expect(before.rows.find((r) => Number(r.id) === pendingId)).toMatchObject({ status: 'pending', confirmed_at: null });
  });

  it.each<[string, (token: string) => InjectOptions]>([
    ['GET /data', (k) => ({ method: 'GET', url: `/data/${k}` })],
    ['GET /data/data.json', (k) => ({ method: 'GET', url: `/data/${k}/data.json` })],
    [
      'POST /data/erase',
      (k) => ({ method: 'POST', url: `/data/${k}/erase`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'confirm=yes' }),
    ],
  ])('%s with an expired data link: 410, telling where a fresh one comes from, nothing read or erased', async (_what, request) => {
    const before = await state();
    const expired = t.c.links.data(pendingId, new Date(Date.now() - (t.config.dataLinkTtlMinutes + 1) * 60_000));
    const token = expired.slice(expired.lastIndexOf('/') + 1);

    const page = await t.app.inject(request(token));
    expect(page.statusCode).toBe(410);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/role="alert">This link has expired\. Ask for a fresh one from the .*Manage your subscription/);
    expect(page.body).not.toContain('pending@example.com');

    const req = request(token);
    const json = await t.app.inject({ ...req, headers: { ...(req.headers as Record<string, string> | undefined), accept: 'application/json' } });
    expect(json.statusCode).toBe(410);
    expect(json.json()).toEqual({ error: { code: 'token_expired', message: expect.stringMatching(/expired/) } });
    expect(await state()).toEqual(before);
  });

  it('an expired token whose signature was tampered with is invalid, not expired', async () => {
    const token = t.c.tokens.sign('confirm', pendingId, new Date(Date.now() - 1000));
    const res = await t.app.inject({ method: 'POST', url: `${path('confirm')}${flipSignature(token)}` });
    expect(res.statusCode).toBe(400);
  });

  describe('for a reader who was erased', () => {
    let erasedId: number;
    let tokens: Record<TokenPurpose, string>;

    beforeAll(async () => {
      const created = await t.app.inject({ method: 'POST', url: '/api/subscribers', headers: t.auth, payload: { email: 'erased@example.com' } });
      expect(created.statusCode).toBe(201);
      erasedId = created.json().id;
      tokens = {
        confirm: t.c.tokens.sign('confirm', erasedId, new Date(Date.now() + 3600_000)),
        unsubscribe: t.c.tokens.sign('unsubscribe', erasedId),
        manage: t.c.tokens.sign('manage', erasedId),
        data: t.c.tokens.sign('data', erasedId, new Date(Date.now() + 3600_000)),
      };
      const manage = await t.app.inject({ method: 'GET', url: `/manage/${tokens.manage}` });
      expect(manage.statusCode).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `/api/subscribers/${erasedId}`, headers: t.auth })).statusCode).toBe(204);
    });

    const erasedRow = async () => Number((await t.c.pool.query('SELECT count(*) FROM subscribers WHERE id = $1', [erasedId])).rows[0].count);

    it.each([
      ['GET /manage', (k: Record<TokenPurpose, string>) => `/manage/${k.manage}`],
      ['GET /data', (k: Record<TokenPurpose, string>) => `/data/${k.data}`],
      ['GET /data/data.json', (k: Record<TokenPurpose, string>) => `/data/${k.data}/data.json`],
    ])('%s answers 404 (page and JSON)', async (_what, url) => {
      const page = await t.app.inject({ method: 'GET', url: url(tokens) });
      expect(page.statusCode).toBe(404);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.body).toContain('role="alert"');
      const json = await t.app.inject({ method: 'GET', url: url(tokens), headers: { accept: 'application/json' } });
      expect(json.statusCode).toBe(404);
      expect(json.json().error.code).toBe('not_found');
    });

    it('POST /manage/data-link answers as for anyone else (202 JSON, the same page) and mails nobody', async () => {
      const json = await t.app.inject({ method: 'POST', url: `/manage/${tokens.manage}/data-link`, headers: { accept: 'application/json' } });
      expect(json.statusCode).toBe(202);
      expect(json.json()).toEqual({ status: 'requested' });
      const page = await t.app.inject({ method: 'POST', url: `/manage/${tokens.manage}/data-link` });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('Check your inbox');
      const jobs = await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed']);
      expect(jobs.filter((j) => j.data.subscriberId === erasedId)).toEqual([]);
    });

    it('POST /confirm answers 404 and brings nobody back', async () => {
      const res = await t.app.inject({ method: 'POST', url: `/confirm/${tokens.confirm}` });
      expect(res.statusCode).toBe(404);
      expect(await erasedRow()).toBe(0);
      const jobs = await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed']);
      expect(jobs.filter((j) => j.data.subscriberId === erasedId)).toEqual([]);
    });

    it('one-click POST /unsubscribe answers 200, no redirect, as a mailbox provider expects', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: `/unsubscribe/${tokens.unsubscribe}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'List-Unsubscribe=One-Click',
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers.location).toBeUndefined();
      expect(res.body).toContain('You are unsubscribed');

      const multipart = await t.app.inject({
        method: 'POST',
        url: `/unsubscribe/${tokens.unsubscribe}`,
        headers: { 'content-type': 'multipart/form-data; boundary=b' },
        payload: '--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n',
      });
      expect(multipart.statusCode).toBe(200);

      const json = await t.app.inject({ method: 'POST', url: `/unsubscribe/${tokens.unsubscribe}`, headers: { accept: 'application/json' } });
      expect(json.statusCode).toBe(200);
      expect(json.json()).toEqual({ status: 'unsubscribed' });
      expect(await erasedRow()).toBe(0);
    });

    it('GET /unsubscribe still shows the button page', async () => {
      const res = await t.app.inject({ method: 'GET', url: `/unsubscribe/${tokens.unsubscribe}` });
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('Unsubscribe me');
    });
  });
});
