import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { handleInboundReport } from '../../src/bounces/inbound/handle-report.js';
import { pruneInboundReports, startReportRetention } from '../../src/bounces/inbound/retention.js';
import { bouncesOf, seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';
import { until } from '../support/editor.js';

const DOMAIN = 'bounces.broadside.test';
const t = useTestContext({ env: { BOUNCE_DOMAIN: DOMAIN } });
const policy = { matchedDays: 30, unmatchedDays: 90 };

const fixture = readFileSync(new URL('./fixtures/postfix-user-unknown.eml', import.meta.url), 'utf8');
let made = 0;

/** A report received `daysAgo` days ago: a DSN matched to a reader, or junk that matched nothing. */
async function report(kind: 'matched' | 'unmatched', daysAgo: number): Promise<{ id: number; subscriberId: number | null }> {
  const n = ++made;
  let raw: string;
  let rcptTo = `bounces@${DOMAIN}`;
  let subscriberId: number | null = null;
  if (kind === 'matched') {
    const m = (await seedSubmittedSend(t, [`kept-${n}-${Date.now()}@readers.test`])).messages[0]!;
    raw = fixture.split('m2s-0123456789abcdef').join(m.token).replace('Subject:', `X-N: ${n}\nSubject:`);
    rcptTo = `bounces+${m.token}@${DOMAIN}`;
    subscriberId = m.subscriberId;
  } else {
    raw = `Subject: junk ${n} ${Date.now()}\n\n${'random words '.repeat(50)}\n`;
  }
  const r = await handleInboundReport(t.c, { raw: Buffer.from(raw), mailFrom: null, rcptTo });
  await t.c.pool.query(`UPDATE inbound_reports SET received_at = now() - make_interval(days => $2::int) WHERE id = $1`, [r.reportId, daysAgo]);
  return { id: r.reportId!, subscriberId };
}

const present = async (ids: number[]): Promise<number[]> =>
  (await t.c.pool.query<{ id: number }>('SELECT id FROM inbound_reports WHERE id = ANY($1::bigint[]) ORDER BY id', [ids])).rows.map((r) => r.id);

describe('retention of raw inbound reports', () => {
  it('deletes matched reports after BOUNCE_REPORT_RETENTION_DAYS and unmatched ones after BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS; their bounce rows and the suppression stay', async () => {
    const fresh = await report('matched', 0);
    const matchedYoung = await report('matched', 29);
    const matchedOld = await report('matched', 31);
    const unmatchedMid = await report('unmatched', 31);
    const unmatchedYoung = await report('unmatched', 89);
    const unmatchedOld = await report('unmatched', 91);
    const matchedAncient = await report('matched', 400);
    const all = [fresh, matchedYoung, matchedOld, unmatchedMid, unmatchedYoung, unmatchedOld, matchedAncient].map((r) => r.id);

    // Batches of 2: the keyset walks on past the reports it keeps.
    const r = await pruneInboundReports(t.c.pool, policy, { scanBatch: 2 });
    expect(r.deleted).toBe(3);
    expect(await present(all)).toEqual([fresh, matchedYoung, unmatchedMid, unmatchedYoung].map((x) => x.id).sort((a, b) => a - b));

    // The rows stay, no longer pointing at a report; the reader stays bounced.
    for (const gone of [matchedOld, matchedAncient]) {
      expect(await bouncesOf(t, 'subscriber_id = $1', [gone.subscriberId])).toEqual([expect.objectContaining({ type: 'hard', report_id: null })]);
      expect((await subscriberStatus(t, gone.subscriberId!)).status).toBe('bounced');
    }
    expect(await bouncesOf(t, 'report_id = $1', [unmatchedOld.id])).toEqual([]);

    // A pruned report answers a 404 that says why it may be gone.
    const res = await t.app.inject({ method: 'GET', url: `/api/bounces/reports/${matchedOld.id}`, headers: t.auth });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: { code: 'not_found', message: expect.stringMatching(/raw reports are kept 30 days when they matched a reader, 90 days when not/) },
    });
    expect((await t.app.inject({ method: 'GET', url: `/api/bounces/reports/${fresh.id}`, headers: t.auth })).statusCode).toBe(200);

    // Idempotent: a second pass finds nothing more.
    expect((await pruneInboundReports(t.c.pool, policy)).deleted).toBe(0);
  });

  it('walks past many kept reports received in the same microsecond, and runs in several processes at once deleting each report once', async () => {
    const kept = [];
    for (let i = 0; i < 7; i++) kept.push((await report('unmatched', 50)).id);
    const doomed = [];
    for (let i = 0; i < 3; i++) doomed.push((await report('unmatched', 100)).id);
    // One statement: one now(), so the same received_at to the microsecond. A cursor rounded
    // to milliseconds would find these again and again.
    await t.c.pool.query(`UPDATE inbound_reports SET received_at = now() - interval '50 days' WHERE id = ANY($1::bigint[])`, [kept]);

    const runs = await Promise.all([1, 2, 3].map(() => pruneInboundReports(t.c.pool, policy, { scanBatch: 2 })));
    expect(runs.reduce((n, r) => n + r.deleted, 0)).toBe(3);
    expect(await present(doomed)).toEqual([]);
    expect(await present(kept)).toEqual(kept);
    await t.c.pool.query('DELETE FROM inbound_reports WHERE id = ANY($1::bigint[])', [kept]);
  });

  it('keeps a kind of report for good when its retention is 0', async () => {
    const matched = await report('matched', 5000);
    const unmatched = await report('unmatched', 5000);
    expect((await pruneInboundReports(t.c.pool, { matchedDays: 0, unmatchedDays: 90 })).deleted).toBe(1);
    expect(await present([matched.id, unmatched.id])).toEqual([matched.id]);
    expect(await pruneInboundReports(t.c.pool, { matchedDays: 0, unmatchedDays: 0 })).toEqual({ deleted: 0, scanned: 0 });
    expect(await present([matched.id])).toEqual([matched.id]);
    await pruneInboundReports(t.c.pool, policy);
  });

  it('is run by every worker at its start and then on its own timer, and counted in the metrics', async () => {
    const old = await report('unmatched', 91);
    const young = await report('unmatched', 1);
    const retention = startReportRetention(t.c, { everyMs: 50 });
    try {
      await until('the old report to be pruned', async () => (await present([old.id])).length === 0);
      const again = await report('unmatched', 200);
      await until('a report aged past retention to be pruned at a later pass', async () => (await present([again.id])).length === 0);
      expect(await present([young.id])).toEqual([young.id]);
      expect(await t.c.metrics.scrape()).toMatch(/^broadside_inbound_reports_pruned_total [2-9]\d*$/m);
    } finally {
      await retention.close();
    }
  });
});
