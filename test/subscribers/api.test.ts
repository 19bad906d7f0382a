import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { SubscriberSchema } from '../../src/subscribers/api-routes.js';
import { createTestContext, type TestContext } from '../support/context.js';
import { truncate } from '../support/truncate.js';

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
beforeEach(async () => {
  await truncate(t.c.pool, 'subscribers, suppressions');
});
afterEach(() => t.assertNoLeaks());
afterAll(async () => {
  await t?.close();
});

// ajv-formats is CommonJS; under ESM interop its function may arrive wrapped in `default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false, allErrors: true }));
const validSubscriber = ajv.compile(SubscriberSchema as object);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Sub = {
  id: number;
  email: string;
  name: string | null;
  status: string;
  createdAt: string;
  updatedAt: string;
  confirmedAt: string | null;
  unsubscribedAt: string | null;
  bouncedAt: string | null;
  complainedAt: string | null;
  consent: { at: string; source: string; ip: string | null; userAgent: string | null };
};
type Page = { items: Sub[]; nextCursor: string | null };

/** Fails with the validator's errors when a body does not match the subscriber schema. */
function expectSubscriberShape(s: unknown): asserts s is Sub {
  if (!validSubscriber(s)) throw new Error(`not a Subscriber: ${JSON.stringify(validSubscriber.errors)}\n${JSON.stringify(s)}`);
  const sub = s as Sub;
  for (const v of [sub.createdAt, sub.updatedAt, sub.consent.at, sub.confirmedAt, sub.unsubscribedAt, sub.bouncedAt, sub.complainedAt]) {
    if (v !== null) expect(v).toMatch(ISO);
  }
}

const api = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  t.app.inject({ method, url, headers: t.auth, ...(payload ? { payload } : {}) });

async function list(query: Record<string, string | number> = {}): Promise<Page> {
  const res = await api('GET', `/api/subscribers?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))}`);
  expect(res.statusCode).toBe(200);
  const body = res.json() as Page;
  expect(Object.keys(body).sort()).toEqual(['items', 'nextCursor']);
  body.items.forEach(expectSubscriberShape);
  return body;
}

/** Every page of a listing, following nextCursor; fails if a page hands back its own cursor. */
async function walk(query: Record<string, string | number>, between?: (page: number) => Promise<void>): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const page = await list({ ...query, ...(cursor ? { cursor } : {}) });
    if (cursor !== null) expect(page.nextCursor).not.toBe(cursor);
    pages.push(page);
    cursor = page.nextCursor;
    if (between) await between(pages.length);
  } while (cursor !== null && pages.length < 1000);
  return pages;
}

type Seed = { email: string; name?: string | null; status?: string; source?: string; createdAt?: string };

/** Inserts rows directly, as they would be after sign-ups, bounces and complaints over time. */
async function seed(rows: Seed[]): Promise<number[]> {
  const { rows: ids } = await t.c.pool.query<{ id: number }>(
    `INSERT INTO subscribers (email, email_normalized, name, status, consent_source, created_at,
                              confirmed_at, unsubscribed_at, bounced_at, complained_at)
     SELECT e, lower(e), n, s::subscriber_status, src::consent_source, COALESCE(c, now()),
            CASE WHEN s <> 'pending' THEN now() END,
            CASE WHEN s = 'unsubscribed' THEN now() END,
            CASE WHEN s = 'bounced' THEN now() END,
            CASE WHEN s = 'complained' THEN now() END
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS x(e, n, s, src, c, ord)
      ORDER BY ord
     RETURNING id`,
    [
      rows.map((r) => r.email),
      rows.map((r) => r.name ?? null),
      rows.map((r) => r.status ?? 'active'),
      rows.map((r) => r.source ?? 'form'),
      rows.map((r) => r.createdAt ?? null),
    ],
  );
  return ids.map((r) => r.id);
}

const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('GET /api/subscribers', () => {
  it('needs the editor token', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/subscribers' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  });

  it('filters by status and by consent source', async () => {
    const ids = await seed([
      { email: 'a1@example.com', status: 'active', source: 'form' },
      { email: 'p1@example.com', status: 'pending', source: 'form' },
      { email: 'u1@example.com', status: 'unsubscribed', source: 'import' },
      { email: 'b1@example.com', status: 'bounced', source: 'api' },
      { email: 'c1@example.com', status: 'complained', source: 'form' },
      { email: 'a2@example.com', status: 'active', source: 'import' },
      { email: 'a3@example.com', status: 'active', source: 'api' },
    ]);
    const [a1, p1, u1, b1, c1, a2, a3] = ids;
    const idsOf = async (q: Record<string, string>) => (await list(q)).items.map((s) => s.id);

    expect(await idsOf({})).toEqual(ids);
    expect(await idsOf({ status: 'active' })).toEqual([a1, a2, a3]);
    expect(await idsOf({ status: 'pending' })).toEqual([p1]);
    expect(await idsOf({ status: 'unsubscribed' })).toEqual([u1]);
    expect(await idsOf({ status: 'bounced' })).toEqual([b1]);
    expect(await idsOf({ status: 'complained' })).toEqual([c1]);
    expect(await idsOf({ source: 'form' })).toEqual([a1, p1, c1]);
    expect(await idsOf({ source: 'import' })).toEqual([u1, a2]);
    expect(await idsOf({ source: 'api' })).toEqual([b1, a3]);
    expect(await idsOf({ status: 'active', source: 'import' })).toEqual([a2]);

    const bounced = (await list({ status: 'bounced' })).items[0]!;
    expect(bounced).toMatchObject({ email: 'b1@example.com', status: 'bounced', bouncedAt: expect.stringMatching(ISO), consent: { source: 'api' } });

    for (const bad of ['status=gone', 'source=web', 'limit=0', 'limit=501', 'limit=x', 'cursor=-1', 'cursor=%2A']) {
      const res = await api('GET', `/api/subscribers?${bad}`);
      expect([bad, res.statusCode, res.json().error.code]).toEqual([bad, 400, 'invalid_input']);
    }
  });

  it('filters by a case-insensitive substring of the address, in which % and _ are literal', async () => {
    const [plain, percent, underscore, upper, idn] = await seed([
      { email: 'abc@example.org' },
      { email: 'a%c@example.org' },
      { email: 'a_c@example.org' },
      { email: 'Mixed.Case@Example.NET' },
      { email: 'anna@münchen.de' },
    ]);
    await t.c.pool.query(`UPDATE subscribers SET email_normalized = 'anna@xn--mnchen-3ya.de' WHERE id = $1`, [idn]);
    const idsOf = async (email: string) => (await list({ email })).items.map((s) => s.id);

    expect(await idsOf('a%c')).toEqual([percent]);
    expect(await idsOf('%')).toEqual([percent]);
    expect(await idsOf('a_c')).toEqual([underscore]);
    expect(await idsOf('_')).toEqual([underscore]);
    expect(await idsOf('c@example.org')).toEqual([plain, percent, underscore]);
    expect(await idsOf('mixed.case@example')).toEqual([upper]);
    expect(await idsOf('EXAMPLE.net')).toEqual([upper]);
    expect(await idsOf('\\')).toEqual([]);
    expect(await idsOf('nobody')).toEqual([]);
    // An internationalised domain is found by its Unicode and its ASCII (punycode) spelling.
    expect(await idsOf('münchen')).toEqual([idn]);
    expect(await idsOf('xn--mnchen')).toEqual([idn]);
  });

  it('filters by creation time: createdAfter inclusive, createdBefore exclusive', async () => {
    const [jan, feb, mar] = await seed([
      { email: 'jan@example.com', createdAt: '2024-01-15T12:00:00.000Z' },
      { email: 'feb@example.com', createdAt: '2024-02-15T12:00:00.000Z' },
      { email: 'mar@example.com', createdAt: '2024-03-15T12:00:00.000Z' },
    ]);
    const idsOf = async (q: Record<string, string>) => (await list(q)).items.map((s) => s.id);

    expect(await idsOf({ createdAfter: '2024-02-01T00:00:00Z' })).toEqual([feb, mar]);
    expect(await idsOf({ createdAfter: '2024-02-15T12:00:00.000Z' })).toEqual([feb, mar]);
    expect(await idsOf({ createdBefore: '2024-02-15T12:00:00.000Z' })).toEqual([jan]);
    expect(await idsOf({ createdAfter: '2024-01-16T00:00:00Z', createdBefore: '2024-03-01T00:00:00+01:00' })).toEqual([feb]);
    expect(await idsOf({ createdAfter: '2024-04-01T00:00:00Z' })).toEqual([]);
    expect((await list({ createdBefore: '2024-01-16T00:00:00Z' })).items[0]!.createdAt).toBe('2024-01-15T12:00:00.000Z');

    // A date alone means midnight UTC.
    expect(await idsOf({ createdAfter: '2024-02-01', createdBefore: '2024-03-01' })).toEqual([feb]);
    for (const bad of ['createdAfter=yesterday', 'createdBefore=2024-02-30T00:00:00Z', 'createdAfter=2024-02-30', 'createdAfter=2024-1-1']) {
      const res = await api('GET', `/api/subscribers?${bad}`);
      expect([bad, res.statusCode, res.json().error.code]).toEqual([bad, 400, 'invalid_input']);
    }
  });

  it('walks every row exactly once, in id order, by nextCursor, ending with null on the last (non-empty) page', async () => {
    const ids = await seed(Array.from({ length: 25 }, (_, i) => ({ email: `walker${i}@example.com`, status: i % 5 === 0 ? 'pending' : 'active' })));

    const pages = await walk({ limit: 5 });
    expect(pages.map((p) => p.items.length)).toEqual([5, 5, 5, 5, 5]);
    expect(pages.at(-1)!.nextCursor).toBeNull();
    expect(pages.flatMap((p) => p.items.map((s) => s.id))).toEqual(ids);

    const uneven = await walk({ limit: 7 });
    expect(uneven.map((p) => p.items.length)).toEqual([7, 7, 7, 4]);
    expect(uneven.flatMap((p) => p.items.map((s) => s.id))).toEqual(ids);

    // With a filter, pages are full pages of matching rows.
    const active = await walk({ limit: 4, status: 'active' });
    expect(active.map((p) => p.items.length)).toEqual([4, 4, 4, 4, 4]);
    expect(active.flatMap((p) => p.items.map((s) => s.id))).toEqual(ids.filter((_, i) => i % 5 !== 0));

    const one = await walk({});
    expect(one).toHaveLength(1);
    expect(one[0]!.items).toHaveLength(25);
    expect(one[0]!.nextCursor).toBeNull();

    // A cursor past the end is an empty last page.
    expect(await list({ cursor: Number.MAX_SAFE_INTEGER.toString(36) })).toEqual({ items: [], nextCursor: null });
  });

  it('answers 400 naming the cursor for a cursor this list never gave, not an empty page', async () => {
    await seed(Array.from({ length: 3 }, (_, i) => ({ email: `foreign${i}@example.com` })));
    // Past 2^53, zero, a leading zero: well-formed base 36, but no nextCursor is ever one of them.
    for (const foreign of ['zzzzzzzzzzzz', '0', '01']) {
      const res = await api('GET', `/api/subscribers?cursor=${foreign}`);
      expect([foreign, res.statusCode]).toEqual([foreign, 400]);
      const { error } = res.json() as { error: { code: string; message: string; details: unknown } };
      expect(error).toEqual({ code: 'invalid_input', message: expect.stringContaining(`cursor "${foreign}"`), details: { field: 'cursor' } });
    }
  });

  it('keeps the walk stable while rows are added and removed during it', async () => {
    const ids = await seed(Array.from({ length: 12 }, (_, i) => ({ email: `stable${i}@example.com` })));
    const added: number[] = [];
    const pages = await walk({ limit: 5 }, async (page) => {
      if (page === 1) {
        for (const n of [1, 2, 3]) {
          const res = await api('POST', '/api/subscribers', { email: `late${n}@example.com` });
          expect(res.statusCode).toBe(201);
          added.push(res.json().id);
        }
        // A row of an already-read page goes away: nothing on later pages shifts.
        expect((await api('DELETE', `/api/subscribers/${ids[2]}`)).statusCode).toBe(204);
      }
    });
    const seen = pages.flatMap((p) => p.items.map((s) => s.id));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...ids, ...added]);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(pages.at(-1)!.nextCursor).toBeNull();
  });
});

describe('GET /api/subscribers/:id', () => {
  it('answers 200 with the subscriber, 404 for an unknown id, 400 for a malformed one', async () => {
    const [id] = await seed([{ email: 'Reader@Example.com', name: 'Reader One', status: 'unsubscribed', createdAt: '2024-05-01T08:30:00.000Z' }]);
    const res = await api('GET', `/api/subscribers/${id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    const body = res.json();
    expectSubscriberShape(body);
    expect(body).toEqual({
      id,
      email: 'Reader@Example.com',
      name: 'Reader One',
      status: 'unsubscribed',
      createdAt: '2024-05-01T08:30:00.000Z',
      updatedAt: expect.stringMatching(ISO),
      confirmedAt: expect.stringMatching(ISO),
      unsubscribedAt: expect.stringMatching(ISO),
      bouncedAt: null,
      complainedAt: null,
      consent: { at: expect.stringMatching(ISO), source: 'form', ip: null, userAgent: null },
    });

    const missing = await api('GET', `/api/subscribers/${id! + 1000}`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', message: 'subscriber not found' } });

    for (const bad of ['abc', '0', '-1', '1.5', '99999999999999999999']) {
      const r = await api('GET', `/api/subscribers/${bad}`);
      expect([bad, r.statusCode]).toEqual([bad, 400]);
    }
  });
});

describe('POST /api/subscribers', () => {
  it('adds an active subscriber with consent source api and the given consent evidence', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/subscribers',
      headers: { ...t.auth, 'user-agent': 'EditorScript/1.0' },
      payload: { email: '  New.Reader@Example.COM ', name: 'New\u0000 Reader\u200b', consentAt: '2024-06-01T10:00:00+02:00', consentIp: '203.0.113.7' },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expectSubscriberShape(body);
    expect(body).toMatchObject({
      email: 'New.Reader@Example.COM',
      name: 'New Reader',
      status: 'active',
      confirmedAt: expect.stringMatching(ISO),
      unsubscribedAt: null,
      consent: { at: '2024-06-01T08:00:00.000Z', source: 'api', ip: '203.0.113.7', userAgent: 'EditorScript/1.0' },
    });
    const row = (await t.c.pool.query('SELECT * FROM subscribers WHERE id = $1', [body.id])).rows[0];
    expect(row).toMatchObject({ email_normalized: 'new.reader@example.com', status: 'active', consent_source: 'api', consent_ip: '203.0.113.7' });
    expect(row.consent_at.toISOString()).toBe('2024-06-01T08:00:00.000Z');

    const again = await api('GET', `/api/subscribers/${body.id}`);
    expect(again.json()).toEqual(body);

    // Without evidence: consent is now, from no known IP (the editor's own address is not the reader's).
    const before = Date.now();
    const bare = await api('POST', '/api/subscribers', { email: 'bare@example.com' });
    expect(bare.statusCode).toBe(201);
    const b = bare.json();
    expectSubscriberShape(b);
    expect(b).toMatchObject({ name: null, status: 'active', consent: { source: 'api', ip: null } });
    expect(Date.parse(b.consent.at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(b.consent.at)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('refuses bad input with 400', async () => {
    const cases: object[] = [
      {},
      { email: 'not-an-address' },
      { email: 'a@example.com\r\nBcc: x@example.com' },
      { email: 42 },
      { email: 'a@example.com', consentAt: 'last week' },
      { email: 'a@example.com', consentAt: new Date(Date.now() + 86_400_000).toISOString() },
      { email: 'a@example.com', consentIp: '999.1.1.1' },
    ];
    for (const payload of cases) {
      const res = await api('POST', '/api/subscribers', payload);
      expect([payload, res.statusCode, res.json().error.code]).toEqual([payload, 400, 'invalid_input']);
    }
    const { rows } = await t.c.pool.query('SELECT count(*)::int AS n FROM subscribers');
    expect(rows[0].n).toBe(0);
  });

  it('answers 409 already_subscribed for an active address and leaves its consent alone', async () => {
    const [id] = await seed([{ email: 'active@example.com', source: 'form', name: 'Kept' }]);
    const before = (await api('GET', `/api/subscribers/${id}`)).json();
    const res = await api('POST', '/api/subscribers', { email: 'ACTIVE@example.com', name: 'Other' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: { code: 'already_subscribed', message: expect.any(String) } });
    expect((await api('GET', `/api/subscribers/${id}`)).json()).toEqual(before);
  });

  it('activates a pending reader (same row), with the editor as the consent source', async () => {
    const signup = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'pending@example.com', name: 'From Form' } });
    expect(signup.statusCode).toBe(202);
    const { rows } = await t.c.pool.query(`SELECT id, status FROM subscribers WHERE email_normalized = 'pending@example.com'`);
    expect(rows).toEqual([{ id: expect.any(Number), status: 'pending' }]);

    const res = await api('POST', '/api/subscribers', { email: 'Pending@Example.com' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expectSubscriberShape(body);
    expect(body).toMatchObject({ id: rows[0].id, email: 'pending@example.com', name: 'From Form', status: 'active', consent: { source: 'api' } });
    expect(body.confirmedAt).toMatch(ISO);
  });

  it.each(['unsubscribed', 'bounced', 'complained'])('answers 409 suppressed for a %s address and leaves it so', async (status) => {
    const [id] = await seed([{ email: `${status}@example.com`, status }]);
    const res = await api('POST', '/api/subscribers', { email: `${status.toUpperCase()}@example.com` });
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toEqual({ code: 'suppressed', message: expect.stringContaining(status) });
    expect((await api('GET', `/api/subscribers/${id}`)).json()).toMatchObject({ status, consent: { source: 'form' } });
  });

  it('answers 409 suppressed for an erased address, even after the reader signed up again without confirming', async () => {
    const created = await api('POST', '/api/subscribers', { email: 'erased@example.com' });
    expect((await api('DELETE', `/api/subscribers/${created.json().id}`)).statusCode).toBe(204);

    const res = await api('POST', '/api/subscribers', { email: 'Erased@Example.com' });
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toEqual({ code: 'suppressed', message: expect.stringContaining('erased') });
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM subscribers')).rows[0].n).toBe(0);

    // A new sign-up is pending; only the reader's own confirmation may lift the erasure.
    expect((await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'erased@example.com' } })).statusCode).toBe(202);
    const again = await api('POST', '/api/subscribers', { email: 'erased@example.com' });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toEqual({ code: 'suppressed', message: expect.stringContaining('erased') });
    expect((await t.c.pool.query('SELECT status FROM subscribers')).rows).toEqual([{ status: 'pending' }]);
  });
});

describe('DELETE /api/subscribers/:id', () => {
  it('erases: 204, the row is gone, only the hash stays, and a second erase is 404', async () => {
    const [keep, gone] = await seed([{ email: 'keep@example.com' }, { email: 'Gone.Reader@Example.com', name: 'Gone Reader', status: 'unsubscribed' }]);
    await t.c.pool.query(`UPDATE subscribers SET email_normalized = 'gone.reader@example.com' WHERE id = $1`, [gone]);

    const res = await api('DELETE', `/api/subscribers/${gone}`);
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect((await api('GET', `/api/subscribers/${gone}`)).statusCode).toBe(404);
    expect((await list()).items.map((s) => s.id)).toEqual([keep]);

    const { rows } = await t.c.pool.query(`SELECT encode(email_hash, 'hex') AS hash, reason FROM suppressions`);
    expect(rows).toEqual([{ hash: sha256Hex('gone.reader@example.com'), reason: 'erased (was unsubscribed)' }]);
    // Nothing readable about the reader remains anywhere in the row.
    expect(JSON.stringify(rows).toLowerCase()).not.toContain('gone');

    const second = await api('DELETE', `/api/subscribers/${gone}`);
    expect(second.statusCode).toBe(404);
    expect(second.json().error.code).toBe('not_found');
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM suppressions')).rows[0].n).toBe(1);

    expect((await api('DELETE', '/api/subscribers/abc')).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/subscribers/${keep}` })).statusCode).toBe(401);
    expect((await api('GET', `/api/subscribers/${keep}`)).statusCode).toBe(200);
  });
});
