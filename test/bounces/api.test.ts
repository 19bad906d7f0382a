import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { BounceSchema } from '../../src/bounces/api-routes.js';
import { storeInboundReport } from '../../src/bounces/inbound/queries.js';
import { writeBounce, type BounceInput, type Match } from '../../src/bounces/queries.js';
import { seedSubmittedSend, type SeededMessage, type SeededSend } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';

const t = useTestContext();

// ajv-formats is CommonJS; under ESM interop its function may arrive wrapped in `default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;
const validBounce = addFormats(new Ajv({ strict: false, allErrors: true })).compile(BounceSchema as object);

type Bounce = {
  id: number;
  type: string;
  source: string;
  subscriberId: number | null;
  email: string | null;
  recipient: string | null;
  messageId: number | null;
  sendId: number | null;
  issueId: number | null;
  matchedBy: string | null;
  action: string | null;
  status: string | null;
  diagnostic: string | null;
  remoteMta: string | null;
  feedbackType: string | null;
  reportId: number | null;
  occurredAt: string;
  receivedAt: string;
};
type Page = { items: Bounce[]; nextCursor: string | null };

const policy = { softBounceLimit: 3, softBounceWindowDays: 30 };

// A real DSN, plus a byte that is not UTF-8: the download must hand back bytes, not re-encoded text.
const RAW = Buffer.concat([readFileSync(new URL('./fixtures/postfix-user-unknown.eml', import.meta.url)), Buffer.from('X-Odd: caf\xe9\r\n', 'latin1')]);

let sendA: SeededSend;
let sendB: SeededSend;
let a1: SeededMessage;
let a2: SeededMessage;
let b1: SeededMessage;
let reportId: number;
/** The recorded rows by name, in the order they were recorded (so ascending ids). */
const ids: Record<string, number> = {};
let allIds: number[];

const match = (m: SeededMessage, s: SeededSend, matchedBy: Match['matchedBy']): Match => ({
  messageId: m.id,
  subscriberId: m.subscriberId,
  sendId: s.sendId,
  matchedBy,
});

async function record(name: string, b: BounceInput): Promise<void> {
  const r = await writeBounce(t.c.pool, b, policy);
  if (!r) throw new Error(`${name} was not recorded`);
  ids[name] = r.id;
}

beforeAll(async () => {
  sendA = await seedSubmittedSend(t, ['ann@example.org', 'bob@example.org']);
  sendB = await seedSubmittedSend(t, ['cat@example.org']);
  [a1, a2] = sendA.messages as [SeededMessage, SeededMessage];
  [b1] = sendB.messages as [SeededMessage];
  const stored = await storeInboundReport(t.c.pool, {
    mailFrom: null,
    rcptTo: 'bounces+x@bounce.example.com',
    kind: 'dsn',
    raw: RAW,
    sha256: createHash('sha256').update(RAW).digest(),
  });
  reportId = stored!;

  await record('hardA1', {
    type: 'hard',
    source: 'dsn',
    match: match(a1, sendA, 'verp'),
    recipient: 'ann@example.org',
    action: 'failed',
    status: '5.1.1',
    diagnostic: 'smtp; 550 5.1.1 user unknown',
    remoteMta: 'mx.example.org',
    eventId: 'r1:ann',
    reportId,
    occurredAt: new Date('2024-01-01T00:00:00Z'),
  });
  await record('softA2', {
    type: 'soft',
    source: 'smtp',
    match: match(a2, sendA, 'submission'),
    recipient: 'bob@example.org',
    status: '4.2.2',
    diagnostic: '452 4.2.2 mailbox full',
    occurredAt: new Date('2024-01-02T00:00:00Z'),
  });
  await record('complaintB1', {
    type: 'complaint',
    source: 'arf',
    match: match(b1, sendB, 'header'),
    recipient: 'cat@example.org',
    feedbackType: 'abuse',
    occurredAt: new Date('2024-01-03T00:00:00Z'),
  });
  await record('otherUnmatched', {
    type: 'other',
    source: 'ses',
    match: null,
    recipient: 'stranger@example.net',
    eventId: 'ses-evt-1',
    occurredAt: new Date('2024-01-04T00:00:00Z'),
  });
  await record('hardUnmatched', {
    type: 'hard',
    source: 'dsn',
    match: null,
    recipient: 'ghost@example.net',
    action: 'failed',
    status: '5.1.1',
    eventId: 'r1:ghost',
    reportId,
    occurredAt: new Date('2024-01-05T00:00:00Z'),
  });
  await record('softA1', {
    type: 'soft',
    source: 'postmark',
    match: { messageId: null, subscriberId: a1.subscriberId, sendId: null, matchedBy: 'address' },
    recipient: 'ann@example.org',
    eventId: 'pm-1',
    occurredAt: new Date('2024-01-06T00:00:00Z'),
  });
  // The reader changed address since: `email` is the current one, `recipient` what the report said.
  await t.c.pool.query("UPDATE subscribers SET email = 'cat.new@example.org', email_normalized = 'cat.new@example.org' WHERE id = $1", [b1.subscriberId]);
  allIds = Object.values(ids).sort((x, y) => y - x);
});

const api = (url: string, headers: Record<string, string> = t.auth) => t.app.inject({ method: 'GET', url, headers });

async function list(query: Record<string, string | number | boolean> = {}): Promise<Page> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
  const res = await api(`/api/bounces?${qs}`);
  expect([qs.toString(), res.statusCode]).toEqual([qs.toString(), 200]);
  const body = res.json() as Page;
  expect(Object.keys(body).sort()).toEqual(['items', 'nextCursor']);
  for (const item of body.items) {
    if (!validBounce(item)) throw new Error(`not a Bounce: ${JSON.stringify(validBounce.errors)}\n${JSON.stringify(item)}`);
  }
  return body;
}

const idsOf = async (query: Record<string, string | number | boolean>) => (await list(query)).items.map((b) => b.id);
const named = (...names: string[]) => names.map((n) => ids[n]!).sort((x, y) => y - x);

describe('GET /api/bounces', () => {
  it('lists every row newest first, with the reader, the send, its issue and the report', async () => {
    const page = await list();
    expect(page.items.map((b) => b.id)).toEqual(allIds);
    expect(page.nextCursor).toBeNull();

    const hard = page.items.find((b) => b.id === ids.hardA1)!;
    expect(hard).toEqual({
      id: ids.hardA1,
      type: 'hard',
      source: 'dsn',
      subscriberId: a1.subscriberId,
      email: 'ann@example.org',
      recipient: 'ann@example.org',
      messageId: a1.id,
      sendId: sendA.sendId,
      issueId: sendA.issueId,
      matchedBy: 'verp',
      action: 'failed',
      status: '5.1.1',
      diagnostic: 'smtp; 550 5.1.1 user unknown',
      remoteMta: 'mx.example.org',
      feedbackType: null,
      reportId,
      occurredAt: '2024-01-01T00:00:00.000Z',
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(Date.now() - Date.parse(hard.receivedAt)).toBeLessThan(5 * 60_000);

    const complaint = page.items.find((b) => b.id === ids.complaintB1)!;
    expect([complaint.email, complaint.recipient, complaint.feedbackType, complaint.issueId]).toEqual([
      'cat.new@example.org',
      'cat@example.org',
      'abuse',
      sendB.issueId,
    ]);

    const unmatched = page.items.find((b) => b.id === ids.hardUnmatched)!;
    expect(unmatched).toEqual(
      expect.objectContaining({
        subscriberId: null,
        email: null,
        recipient: 'ghost@example.net',
        messageId: null,
        sendId: null,
        issueId: null,
        matchedBy: null,
        reportId,
      }),
    );
    // Matched by address: a reader but no send, so no issue either.
    expect(page.items.find((b) => b.id === ids.softA1)).toEqual(
      expect.objectContaining({ subscriberId: a1.subscriberId, sendId: null, issueId: null, matchedBy: 'address' }),
    );
  });

  it('filters by type', async () => {
    expect(await idsOf({ type: 'hard' })).toEqual(named('hardA1', 'hardUnmatched'));
    expect(await idsOf({ type: 'soft' })).toEqual(named('softA2', 'softA1'));
    expect(await idsOf({ type: 'complaint' })).toEqual(named('complaintB1'));
    expect(await idsOf({ type: 'other' })).toEqual(named('otherUnmatched'));
  });

  it('filters by source', async () => {
    expect(await idsOf({ source: 'dsn' })).toEqual(named('hardA1', 'hardUnmatched'));
    expect(await idsOf({ source: 'smtp' })).toEqual(named('softA2'));
    expect(await idsOf({ source: 'arf' })).toEqual(named('complaintB1'));
    expect(await idsOf({ source: 'ses' })).toEqual(named('otherUnmatched'));
    expect(await idsOf({ source: 'postmark' })).toEqual(named('softA1'));
    expect(await idsOf({ source: 'mailgun' })).toEqual([]);
  });

  it("filters by issue (the bounces of that issue's send)", async () => {
    expect(await idsOf({ issue: sendA.issueId })).toEqual(named('hardA1', 'softA2'));
    expect(await idsOf({ issue: sendB.issueId })).toEqual(named('complaintB1'));
    expect(await idsOf({ issue: 999_999 })).toEqual([]);
  });

  it('filters by when it occurred: since inclusive, until exclusive', async () => {
    expect(await idsOf({ since: '2024-01-03T00:00:00Z' })).toEqual(named('complaintB1', 'otherUnmatched', 'hardUnmatched', 'softA1'));
    expect(await idsOf({ until: '2024-01-03T00:00:00Z' })).toEqual(named('hardA1', 'softA2'));
    expect(await idsOf({ since: '2024-01-02T00:00:00Z', until: '2024-01-04T12:00:00+01:00' })).toEqual(named('softA2', 'complaintB1', 'otherUnmatched'));
    expect(await idsOf({ since: '2030-01-01T00:00:00Z' })).toEqual([]);
    // A date alone means midnight UTC.
    expect(await idsOf({ since: '2024-01-02', until: '2024-01-03' })).toEqual(await idsOf({ since: '2024-01-02T00:00:00Z', until: '2024-01-03T00:00:00Z' }));
    expect(await idsOf({ since: '2024-01-02', until: '2024-01-03' })).not.toEqual([]);
  });

  it('matched=false lists the reports that matched no reader, matched=true the others', async () => {
    expect(await idsOf({ matched: false })).toEqual(named('otherUnmatched', 'hardUnmatched'));
    expect(await idsOf({ matched: true })).toEqual(named('hardA1', 'softA2', 'complaintB1', 'softA1'));
  });

  it('filters by subscriber, and combines filters', async () => {
    expect(await idsOf({ subscriber: a1.subscriberId })).toEqual(named('hardA1', 'softA1'));
    expect(await idsOf({ subscriber: b1.subscriberId })).toEqual(named('complaintB1'));
    expect(await idsOf({ subscriber: 999_999 })).toEqual([]);
    expect(await idsOf({ type: 'hard', matched: false })).toEqual(named('hardUnmatched'));
    expect(await idsOf({ type: 'soft', issue: sendA.issueId })).toEqual(named('softA2'));
  });

  it('walks every row exactly once across pages, and the last page says so', async () => {
    const walk = async (query: Record<string, string | number | boolean>) => {
      const pages: Page[] = [];
      let cursor: string | null = null;
      do {
        const page: Page = await list({ ...query, limit: 2, ...(cursor ? { cursor } : {}) });
        expect(page.items.length).toBeLessThanOrEqual(2);
        if (cursor !== null) expect(page.nextCursor).not.toBe(cursor);
        pages.push(page);
        cursor = page.nextCursor;
        if (pages.length > 10) throw new Error('pagination does not end');
      } while (cursor);
      return pages;
    };
    const all = await walk({});
    expect(all.map((p) => p.items.length)).toEqual([2, 2, 2]);
    expect(all.flatMap((p) => p.items.map((b) => b.id))).toEqual(allIds);
    // Four matched rows: two full pages, and no empty third one.
    const matched = await walk({ matched: true });
    expect(matched.map((p) => p.items.length)).toEqual([2, 2]);
    expect(matched.flatMap((p) => p.items.map((b) => b.id))).toEqual(named('hardA1', 'softA2', 'complaintB1', 'softA1'));
  });

  it('answers 400 in the error shape for bad filter values', async () => {
    const bad = [
      'type=bogus',
      'source=bogus',
      'issue=0',
      'issue=abc',
      'subscriber=-1',
      'matched=maybe',
      'since=notadate',
      'until=2024-13-45T00:00:00Z',
      'since=2024-02-30',
      'since=2024-1-1',
      'limit=0',
      'limit=501',
      'limit=1.5',
      'cursor=garbage!',
      'cursor=GARBAGE',
      'cursor=',
      'cursor=zzzzzzzzzzzz',
    ];
    for (const qs of bad) {
      const res = await api(`/api/bounces?${qs}`);
      expect([qs, res.statusCode]).toEqual([qs, 400]);
      const body = res.json() as { error: { code: string; message: string } };
      expect([qs, body.error]).toEqual([qs, expect.objectContaining({ code: 'invalid_input', message: expect.any(String) })]);
    }
  });

  it('answers 400 naming the cursor for a cursor this list never gave, not an empty page', async () => {
    for (const foreign of ['zzzzzzzzzzzz', '0', '01']) {
      const res = await api(`/api/bounces?cursor=${foreign}`);
      expect([foreign, res.statusCode]).toEqual([foreign, 400]);
      const { error } = res.json() as { error: { code: string; message: string; details: unknown } };
      expect(error).toEqual({ code: 'invalid_input', message: expect.stringContaining(`cursor "${foreign}"`), details: { field: 'cursor' } });
    }
    // A cursor this list could give, past every row: an empty last page.
    expect(await list({ cursor: '1' })).toEqual({ items: [], nextCursor: null });
  });

  it('answers 401 without the bearer token', async () => {
    for (const url of ['/api/bounces', `/api/bounces/reports/${reportId}`]) {
      const res = await api(url, {});
      expect([url, res.statusCode]).toEqual([url, 401]);
      expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
      expect(res.body).not.toContain('X-Odd');
    }
  });
});

describe('GET /api/bounces/reports/:id', () => {
  it('hands back the stored mail byte for byte, as message/rfc822', async () => {
    const res = await api(`/api/bounces/reports/${reportId}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('message/rfc822');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="inbound-report-${reportId}.eml"`);
    expect(res.rawPayload.equals(RAW)).toBe(true);
  });

  it('is 404 for a report that does not exist, 400 for an id that is not one', async () => {
    const missing = await api('/api/bounces/reports/999999');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    const bad = await api('/api/bounces/reports/abc');
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { error: { code: string } }).error.code).toBe('invalid_input');
  });
});
