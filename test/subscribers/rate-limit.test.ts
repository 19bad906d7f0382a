import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/api/app.js';
import { createTestContext, type TestContext } from '../support/context.js';

const LIMIT = 3;

let t: TestContext;
let second: FastifyInstance;
beforeAll(async () => {
  t = await createTestContext({ env: { SIGNUP_RATE_LIMIT: String(LIMIT) } });
  // Another API process: its own Fastify instance, the same Redis and queue prefix.
  second = await buildApp(t.c);
  await second.ready();
});
afterEach(() => t.assertNoLeaks());
afterAll(async () => {
  await second?.close();
  await t?.close();
});

let serial = 0;
/** A fresh address each time, so every accepted request really is a new sign-up. */
const nextEmail = () => `reader${++serial}@example.com`;

const json = (ip: string, email = nextEmail()): InjectOptions => ({ method: 'POST', url: '/subscribe', remoteAddress: ip, payload: { email } });
const form = (ip: string, email = nextEmail()): InjectOptions => ({
  method: 'POST',
  url: '/subscribe',
  remoteAddress: ip,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  payload: `email=${encodeURIComponent(email)}`,
});

async function state() {
  const { rows } = await t.c.pool.query('SELECT count(*) FROM subscribers');
  const counts = await t.c.queues.readerMail.getJobCounts();
  return { subscribers: Number(rows[0].count), jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
}

function expectRetryAfter(res: LightMyRequestResponse) {
  const after = res.headers['retry-after'];
  expect(after).toMatch(/^\d+$/);
  expect(Number(after)).toBeGreaterThanOrEqual(1);
  expect(Number(after)).toBeLessThanOrEqual(t.config.signupRateWindowSeconds);
}

function expectLimitedJson(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(429);
  expectRetryAfter(res);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
}

function expectLimitedPage(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(429);
  expectRetryAfter(res);
  expect(res.headers['content-type']).toMatch(/^text\/html/);
  expect(res.body).toContain('<title>Slow down');
  expect(res.body).toMatch(/role="alert">too many requests/);
}

/** Sends the requests one after another (the order is the point) and returns the answers. */
async function inSequence(app: FastifyInstance, requests: InjectOptions[]): Promise<LightMyRequestResponse[]> {
  const out: LightMyRequestResponse[] = [];
  for (const r of requests) out.push(await app.inject(r));
  return out;
}

describe('sign-up rate limit (SIGNUP_RATE_LIMIT per IP and window)', () => {
  it('accepts a burst up to the limit from one IP, then answers 429 with Retry-After and writes nothing', async () => {
    const ip = '198.51.100.1';
    const accepted = await inSequence(t.app, [json(ip), json(ip), json(ip)]);
    expect(accepted.map((r) => r.statusCode)).toEqual([202, 202, 202]);
    expect(accepted[0]!.headers['x-ratelimit-limit']).toBe(String(LIMIT));

    const before = await state();
    const limited = await inSequence(t.app, [json(ip), json(ip)]);
    for (const res of limited) expectLimitedJson(res);
    expect(await state()).toEqual(before);
  });

  it('answers a form post over the limit with an HTML page', async () => {
    const ip = '198.51.100.2';
    const accepted = await inSequence(t.app, [form(ip), form(ip), form(ip)]);
    expect(accepted.map((r) => r.statusCode)).toEqual([303, 303, 303]);

    const before = await state();
    expectLimitedPage(await t.app.inject(form(ip)));
    expect(await state()).toEqual(before);
  });

  it('counts JSON and form sign-ups against one shared limit', async () => {
    const ip = '198.51.100.3';
    const accepted = await inSequence(t.app, [json(ip), form(ip), json(ip)]);
    expect(accepted.map((r) => r.statusCode)).toEqual([202, 303, 202]);

    const before = await state();
    expectLimitedPage(await t.app.inject(form(ip)));
    expectLimitedJson(await t.app.inject(json(ip)));
    expect(await state()).toEqual(before);
  });

  it('counts refused (bad) sign-ups too, so probing with garbage is limited alike', async () => {
    const ip = '198.51.100.4';
    const bad = await inSequence(t.app, [json(ip, 'nope'), form(ip, 'nope'), json(ip, 'a@b')]);
    expect(bad.map((r) => r.statusCode)).toEqual([400, 400, 400]);
    expectLimitedJson(await t.app.inject(json(ip)));
  });

  it('leaves other IPs unaffected', async () => {
    const noisy = '198.51.100.5';
    await inSequence(t.app, [json(noisy), json(noisy), json(noisy)]);
    expectLimitedJson(await t.app.inject(json(noisy)));

    const quiet = await inSequence(t.app, [json('198.51.100.6'), form('198.51.100.7'), json('2001:db8:aaaa:1::1')]);
    expect(quiet.map((r) => r.statusCode)).toEqual([202, 303, 202]);
  });

  it('treats an IPv4-mapped IPv6 address as the IPv4 address, and one IPv6 /64 as one client', async () => {
    const mapped = await inSequence(t.app, [json('198.51.100.8'), json('::ffff:198.51.100.8'), json('198.51.100.8')]);
    expect(mapped.map((r) => r.statusCode)).toEqual([202, 202, 202]);
    expectLimitedJson(await t.app.inject(json('::ffff:198.51.100.8')));

    const subnet = await inSequence(t.app, [json('2001:db8:bbbb:1::1'), json('2001:db8:bbbb:1::2'), json('2001:db8:bbbb:1:ffff::3')]);
    expect(subnet.map((r) => r.statusCode)).toEqual([202, 202, 202]);
    expectLimitedJson(await t.app.inject(json('2001:db8:bbbb:1::4')));
    expect((await t.app.inject(json('2001:db8:bbbb:2::1'))).statusCode).toBe(202);
  });

  it('is shared by two API instances on the same Redis prefix', async () => {
    const ip = '198.51.100.9';
    const first = await t.app.inject(json(ip));
    const onSecond = await inSequence(second, [form(ip), json(ip)]);
    expect([first.statusCode, ...onSecond.map((r) => r.statusCode)]).toEqual([202, 303, 202]);

    const before = await state();
    expectLimitedJson(await second.inject(json(ip)));
    expectLimitedPage(await t.app.inject(form(ip)));
    expectLimitedJson(await t.app.inject(json(ip)));
    expect(await state()).toEqual(before);
  });

  it('is not shared with a deployment on another Redis prefix', async () => {
    const ip = '198.51.100.10';
    await inSequence(t.app, [json(ip), json(ip), json(ip)]);
    expectLimitedJson(await t.app.inject(json(ip)));

    const elsewhere = await createTestContext({ env: { SIGNUP_RATE_LIMIT: String(LIMIT) } });
    try {
      const res = await elsewhere.app.inject(json(ip));
      expect(res.statusCode).toBe(202);
    } finally {
      await elsewhere.close();
    }
  });

  it('does not limit the other reader pages', async () => {
    const ip = '198.51.100.11';
    await inSequence(t.app, [json(ip), json(ip), json(ip)]);
    expectLimitedJson(await t.app.inject(json(ip)));
    const pages = await inSequence(
      t.app,
      ['/', '/subscribe/check-inbox', '/'].map((url) => ({ method: 'GET' as const, url, remoteAddress: ip })),
    );
    expect(pages.map((r) => r.statusCode)).toEqual([200, 200, 200]);
  });
});
