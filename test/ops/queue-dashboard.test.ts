import { describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { queueNames } from '../../src/queues/contract.js';
import { TEST_TOKEN, useTestContext } from '../support/context.js';

const t = useTestContext();

const DASHBOARD = '/admin/queues';
const basic = (password: string, user = 'operator') => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

/** The page's scripts and stylesheets, as absolute paths (the page sets <base href>). */
function assetsOf(page: string): string[] {
  const base = /<base href="([^"]+)"/.exec(page)?.[1];
  expect(base).toBe(`${DASHBOARD}/`);
  const refs = [...page.matchAll(/<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  return refs.filter((r) => !/^https?:/.test(r)).map((r) => new URL(r, `http://x${base}`).pathname);
}

type BoardQueue = {
  name: string;
  description?: string;
  counts: Record<string, number>;
  jobs: { id: string; name: string; data: unknown }[];
  readOnlyMode: boolean;
  isPaused: boolean;
};

function expectRefused(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(401);
  expect(res.headers['www-authenticate']).toMatch(/^Basic realm="[^"]+"/);
  expect(res.body).not.toContain(TEST_TOKEN);
}

describe('queue dashboard at /admin/queues', () => {
  it('answers 401 with a Basic challenge to anyone without the token: page, assets and its API alike', async () => {
    const page = await get(DASHBOARD, basic(TEST_TOKEN));
    expect(page.statusCode).toBe(200);
    const urls = [DASHBOARD, `${DASHBOARD}/`, `${DASHBOARD}/queue/${queueNames.deliver}`, `${DASHBOARD}/api/queues`, ...assetsOf(page.body)];
    expect(urls.length).toBeGreaterThan(5);
    for (const url of urls) {
      for (const headers of [{}, basic('wrong-password'), basic(TEST_TOKEN.slice(0, -1)), { authorization: 'Bearer nope' }, basic('', TEST_TOKEN)]) {
        const res = await get(url, headers);
        expect([url, headers, res.statusCode]).toEqual([url, headers, 401]);
        expectRefused(res);
      }
    }
    // A program asking for JSON gets our error shape.
    const json = await get(`${DASHBOARD}/api/queues`, { accept: 'application/json' });
    expectRefused(json);
    expect(json.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  });

  it('shows the board to the token, as the Basic password (a browser) or as Bearer', async () => {
    for (const headers of [basic(TEST_TOKEN), basic(TEST_TOKEN, ''), t.auth]) {
      const res = await get(DASHBOARD, headers);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('<title>Broadside queues</title>');
      expect(res.body).not.toContain(TEST_TOKEN);
    }
    // The board's client-side routes answer with the same page.
    const deep = await get(`${DASHBOARD}/queue/${queueNames.deliver}`, basic(TEST_TOKEN));
    expect(deep.statusCode).toBe(200);
    expect(deep.body).toContain('<title>Broadside queues</title>');
  });

  it('serves its scripts and stylesheets to the token', async () => {
    const page = await get(DASHBOARD, basic(TEST_TOKEN));
    const assets = assetsOf(page.body);
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
    for (const asset of assets) {
      const res = await get(asset, basic(TEST_TOKEN));
      expect([asset, res.statusCode]).toEqual([asset, 200]);
      expect(res.headers['content-type']).toMatch(asset.endsWith('.js') ? /javascript/ : /^text\/css/);
      expect(res.body.length).toBeGreaterThan(100);
    }
  });

  it("lists our queues, under this deployment's prefix, with counts and the job a signup added", async () => {
    const signup = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'ada@example.org', name: 'Ada' } });
    expect(signup.statusCode).toBe(202);
    // No worker runs in this file: the confirmation waits in reader-mail.
    expect(await t.c.queues.readerMail.getWaitingCount()).toBe(1);

    const res = await get(`${DASHBOARD}/api/queues?activeQueue=${queueNames.readerMail}&status=latest&page=1&jobsPerPage=10`, basic(TEST_TOKEN));
    expect(res.statusCode).toBe(200);
    const { queues } = res.json() as { queues: BoardQueue[] };
    expect(queues.map((q) => q.name).sort()).toEqual(Object.values(queueNames).sort());

    const readerMail = queues.find((q) => q.name === queueNames.readerMail)!;
    expect(readerMail.counts).toEqual(expect.objectContaining({ waiting: 1, active: 0, failed: 0, delayed: 0 }));
    expect(readerMail.description).toContain(`${t.config.queuePrefix}:${queueNames.readerMail}`);
    expect(readerMail.jobs).toHaveLength(1);
    expect(readerMail.jobs[0]).toEqual(expect.objectContaining({ name: 'confirmation', data: { kind: 'confirmation', subscriberId: expect.any(Number) } }));
    // Jobs carry ids only: the reader's address is not on the board.
    expect(res.body).not.toContain('ada@example.org');

    for (const name of [queueNames.fanout, queueNames.deliver]) {
      const q = queues.find((x) => x.name === name)!;
      expect(Object.values(q.counts).every((n) => n === 0)).toBe(true);
    }
  });

  it('is read-only: pausing or emptying a queue from the board is refused and changes nothing', async () => {
    await t.c.queues.readerMail.add('confirmation', { kind: 'confirmation', subscriberId: 424242 }, { jobId: 'dashboard-read-only' });
    const waiting = await t.c.queues.readerMail.getWaitingCount();
    for (const action of ['pause', 'empty']) {
      const res = await t.app.inject({
        method: 'PUT',
        url: `${DASHBOARD}/api/queues/${queueNames.readerMail}/${action}`,
        headers: { ...basic(TEST_TOKEN), 'content-type': 'application/json' },
        payload: {},
      });
      expect([action, res.statusCode]).toEqual([action, 405]);
    }
    expect(await t.c.queues.readerMail.isPaused()).toBe(false);
    expect(await t.c.queues.readerMail.getWaitingCount()).toBe(waiting);
    // Without the token the same request does not even reach the board.
    const stranger = await t.app.inject({
      method: 'PUT',
      url: `${DASHBOARD}/api/queues/${queueNames.readerMail}/pause`,
      headers: { 'content-type': 'application/json' },
      payload: {},
    });
    expectRefused(stranger);
  });

  it('is not part of the OpenAPI document', async () => {
    const spec = (await get('/docs/json')).json() as { paths: Record<string, unknown> };
    expect(Object.keys(spec.paths).filter((p) => p.startsWith(DASHBOARD))).toEqual([]);
  });
});
