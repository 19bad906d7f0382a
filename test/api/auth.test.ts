import { describe, expect, it } from '@jest/globals';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { useTestContext, TEST_TOKEN } from '../support/context.js';

const t = useTestContext();

const basic = (userPass: string) => `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}`;
const subscriberCount = async () => Number((await t.c.pool.query('SELECT count(*) FROM subscribers')).rows[0].count);

/** Nothing secret, nor anything the caller presented, is echoed in an error. */
function expectNoSecrets(res: LightMyRequestResponse, presented?: string) {
  const everything = `${JSON.stringify(res.headers)}\n${res.body}`;
  expect(everything).not.toContain(TEST_TOKEN);
  // Not even a prefix of the token (as a "did you mean" or a partial comparison would leak).
  expect(everything).not.toContain(TEST_TOKEN.slice(0, 8));
  expect(everything).not.toContain(t.config.secret);
  if (presented) expect(everything).not.toContain(presented);
}

function expectUnauthorizedJson(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(401);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  expect(res.json().error.message.length).toBeGreaterThan(0);
}

const sameLengthWrong = TEST_TOKEN.replace(/.$/, (c) => (c === 'x' ? 'y' : 'x'));

/** [what, Authorization header or undefined]: all refused by the editor API. */
const refusedCredentials: [string, string | undefined][] = [
  ['no Authorization header', undefined],
  ['an empty Authorization header', ''],
  ['the scheme without a token', 'Bearer'],
  ['the scheme and a blank token', 'Bearer    '],
  ['a wrong token of the same length', `Bearer ${sameLengthWrong}`],
  ['a shorter token (a prefix of the right one)', `Bearer ${TEST_TOKEN.slice(0, -1)}`],
  ['a longer token (the right one plus a character)', `Bearer ${TEST_TOKEN}x`],
  ['a much longer token', `Bearer ${'z'.repeat(4096)}`],
  ['the right token followed by another word', `Bearer ${TEST_TOKEN} extra`],
  ['the right token in another scheme (Token)', `Token ${TEST_TOKEN}`],
  ['the right token as a Basic password', basic(`editor:${TEST_TOKEN}`)],
  ['the right token as Basic credentials without a colon', basic(TEST_TOKEN)],
  ['the right token without any scheme', TEST_TOKEN],
];

const editorRequests: [string, (authorization: string | undefined) => InjectOptions][] = [
  ['GET /api/subscribers', (a) => ({ method: 'GET', url: '/api/subscribers', headers: a === undefined ? {} : { authorization: a } })],
  ['GET /api/subscribers/export', (a) => ({ method: 'GET', url: '/api/subscribers/export', headers: a === undefined ? {} : { authorization: a } })],
  [
    'POST /api/subscribers',
    (a) => ({ method: 'POST', url: '/api/subscribers', headers: a === undefined ? {} : { authorization: a }, payload: { email: 'intruder@example.com' } }),
  ],
  ['DELETE /api/subscribers/1', (a) => ({ method: 'DELETE', url: '/api/subscribers/1', headers: a === undefined ? {} : { authorization: a } })],
];

describe('the editor API', () => {
  it.each(refusedCredentials)('answers 401 unauthorized to %s', async (_what, authorization) => {
    for (const [, request] of editorRequests) {
      const res = await t.app.inject(request(authorization));
      expectUnauthorizedJson(res);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
      expectNoSecrets(res, authorization && authorization.length > 12 && !authorization.includes(TEST_TOKEN) ? authorization : undefined);
    }
    expect(await subscriberCount()).toBe(0);
  });

  it.each(editorRequests)('answers 401 in JSON to %s even when the client asks for HTML', async (_what, request) => {
    const r = request(`Bearer ${sameLengthWrong}`);
    const res = await t.app.inject({ ...r, headers: { ...(r.headers as Record<string, string>), accept: 'text/html' } });
    expectUnauthorizedJson(res);
  });

  it.each([
    ['Bearer (as documented)', `Bearer ${TEST_TOKEN}`],
    ['lowercase bearer', `bearer ${TEST_TOKEN}`],
    ['uppercase BEARER', `BEARER ${TEST_TOKEN}`],
    ['several spaces and a trailing space', `Bearer   ${TEST_TOKEN} `],
  ])('accepts %s', async (_what, authorization) => {
    const res = await t.app.inject({ method: 'GET', url: '/api/subscribers', headers: { authorization } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ items: [], nextCursor: null });
  });

  it('lets a caller with the token write, and only then', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/subscribers',
      headers: { authorization: `bearer ${TEST_TOKEN}` },
      payload: { email: 'ok@example.com' },
    });
    expect(res.statusCode).toBe(201);
    expect(await subscriberCount()).toBe(1);
    await t.c.pool.query('DELETE FROM subscribers');
  });
});

describe('the operator pages (/admin/mail)', () => {
  it('prompts a browser for Basic credentials with an HTML 401', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/mail', headers: { accept: 'text/html' } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm="[^"]+"/);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('role="alert"');
    expectNoSecrets(res);
  });

  it('answers a program with a JSON 401 and the same prompt', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/mail', headers: { accept: 'application/json' } });
    expectUnauthorizedJson(res);
    expect(res.headers['www-authenticate']).toMatch(/^Basic /);
    expectNoSecrets(res);
  });

  it.each([
    ['any user name', `editor:${TEST_TOKEN}`],
    ['an empty user name', `:${TEST_TOKEN}`],
  ])('accepts the token as the Basic password with %s', async (_what, userPass) => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/mail', headers: { authorization: basic(userPass) } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('Captured mail');
  });

  it('accepts the token as a Bearer token too', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/mail', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(res.statusCode).toBe(200);
  });

  it.each([
    ['a wrong password', basic(`editor:${sameLengthWrong}`)],
    ['the token as the user name', basic(`${TEST_TOKEN}:`)],
    ['the token with no colon at all', basic(TEST_TOKEN)],
    ['a password of another length', basic(`editor:${TEST_TOKEN}${TEST_TOKEN}`)],
    ['base64 that is not base64', 'Basic !!!not-base64!!!'],
    ['a wrong Bearer token', `Bearer ${sameLengthWrong}`],
  ])('refuses %s and prompts again', async (_what, authorization) => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/mail', headers: { authorization } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic /);
    expectNoSecrets(res);
  });
});
