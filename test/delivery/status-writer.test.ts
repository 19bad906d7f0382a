import { beforeAll, describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { StatusWriter } from '../../src/delivery/status-writer.js';
import { useTestContext } from '../support/context.js';
import { until } from '../support/editor.js';
import { someoneWaitsForLock } from '../support/send-checks.js';

const t = useTestContext();

type Write = { ids: number[]; responses: string[]; startedAt: number; finishedAt?: number };

/**
 * The real pool, seen through a spy: every query is recorded with the message ids it writes,
 * and can be held back (`gate`) or made to fail (`failWith`).
 */
function spyPool(pool: Pool) {
  const writes: Write[] = [];
  let clock = 0;
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => undefined;
  let failure: Error | undefined;
  const spy = {
    // Either query(text, values) or query({ text, values, name? }), as pg takes them.
    async query(query: string | { text: string; values?: unknown[] }, params?: unknown[]) {
      const values = (typeof query === 'string' ? params : query.values) ?? [];
      const w: Write = { ids: (values[0] as number[]).slice(), responses: (values[1] as string[]).slice(), startedAt: ++clock };
      writes.push(w);
      await gate;
      if (failure) throw failure;
      const result = await (pool.query as (q: unknown, p?: unknown[]) => Promise<unknown>)(query, params);
      w.finishedAt = ++clock;
      return result;
    },
  };
  return {
    pool: spy as unknown as Pool,
    writes,
    tick: () => ++clock,
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release: () => open(),
    failWith(err: Error | undefined) {
      failure = err;
    },
  };
}

let sendId: number;

async function rowsOf(ids: number[]): Promise<Map<number, { status: string; smtp_response: string | null; submitted_at: Date | null }>> {
  const { rows } = await t.c.pool.query('SELECT id, status::text, smtp_response, submitted_at FROM messages WHERE id = ANY($1::bigint[])', [ids]);
  return new Map(rows.map((r) => [r.id, r]));
}

beforeAll(async () => {
  const issue = await t.app.inject({ method: 'POST', url: '/api/issues', headers: t.auth, payload: { subject: 'Status writer', markdown: 'Text.' } });
  const { rows } = await t.c.pool.query(
    `INSERT INTO sends (issue_id, status, audience_at, started_at, fanout_done) VALUES ($1, 'sending', now(), now(), true) RETURNING id`,
    [issue.json().id],
  );
  sendId = rows[0].id;
});

describe('StatusWriter', () => {
  let offset = 0;
  /** Fresh claimed messages for each test (distinct subscriber ids). */
  async function fresh(n: number): Promise<number[]> {
    const { rows } = await t.c.pool.query<{ id: number }>(
      `INSERT INTO messages (send_id, subscriber_id, status, attempts, claimed_at)
       SELECT $1, $3::int + g, 'sending', 1, now() FROM generate_series(1, $2::int) g
       RETURNING id`,
      [sendId, n, offset],
    );
    offset += n;
    return rows.map((r) => r.id);
  }

  it('writes many concurrent submissions in a few UPDATEs, each with its own response', async () => {
    const ids = await fresh(1200);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 500, maxDelayMs: 10 });
    await Promise.all(ids.map((id) => writer.submitted(id, `250 2.0.0 Ok: queued as Q${id}`)));

    // 1200 at once: full batches of 500 as they fill, the rest after the delay.
    expect(spy.writes.map((w) => w.ids.length)).toEqual([500, 500, 200]);
    expect(spy.writes.flatMap((w) => w.ids).sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
    const rows = await rowsOf(ids);
    for (const id of ids) {
      expect(rows.get(id)).toMatchObject({ status: 'submitted', smtp_response: `250 2.0.0 Ok: queued as Q${id}` });
      expect(rows.get(id)!.submitted_at).toBeInstanceOf(Date);
    }
    await writer.close();
  });

  it('groups submissions arriving within maxDelayMs into one UPDATE', async () => {
    const ids = await fresh(50);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 500, maxDelayMs: 50 });
    const done: Promise<void>[] = [];
    for (const id of ids) {
      done.push(writer.submitted(id, '250 ok'));
      // Spread over a few event-loop turns, all well within the delay.
      if (id % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(done);
    expect(spy.writes).toHaveLength(1);
    expect(spy.writes[0]!.ids).toHaveLength(50);
    await writer.close();
  });

  it('resolves each caller only after the UPDATE holding its message has committed', async () => {
    const ids = await fresh(30);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 10, maxDelayMs: 5 });
    spy.hold();
    const resolvedAt = new Map<number, number>();
    const all = Promise.all(
      ids.map((id) =>
        writer.submitted(id, '250 ok').then(() => {
          resolvedAt.set(id, spy.tick());
        }),
      ),
    );

    // The three batches are written but held: nobody may resolve yet, and no row is submitted.
    const deadline = Date.now() + 5000;
    while (spy.writes.length < 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(spy.writes.map((w) => w.ids.length)).toEqual([10, 10, 10]);
    expect(resolvedAt.size).toBe(0);
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'sending')).toBe(true);

    spy.release();
    await all;
    for (const w of spy.writes) {
      for (const id of w.ids) expect(resolvedAt.get(id)).toBeGreaterThan(w.finishedAt!);
    }
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'submitted')).toBe(true);
    await writer.close();
  });

  it('close() writes what is still waiting for its delay and waits for the writes in progress', async () => {
    const ids = await fresh(7);
    const spy = spyPool(t.c.pool);
    // A delay far longer than the test: only close() can write these.
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 500, maxDelayMs: 60_000 });
    let resolved = 0;
    const all = Promise.all(ids.map((id) => writer.submitted(id, '250 queued').then(() => void resolved++)));
    await new Promise((r) => setImmediate(r));
    expect(spy.writes).toHaveLength(0);
    expect(resolved).toBe(0);

    await writer.close();
    // Every caller's promise is settled by the time close() returns.
    expect(spy.writes.map((w) => w.ids.length)).toEqual([7]);
    await all;
    expect(resolved).toBe(7);
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'submitted')).toBe(true);
  });

  it('close() waits for a write already under way', async () => {
    const ids = await fresh(5);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 5, maxDelayMs: 60_000 });
    spy.hold();
    const all = Promise.all(ids.map((id) => writer.submitted(id, '250 ok')));
    expect(spy.writes).toHaveLength(1);
    let closed = false;
    const closing = writer.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    spy.release();
    await closing;
    await all;
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'submitted')).toBe(true);
  });

  it('rejects every caller of a batch whose write fails for a reason other than a lost connection, and nobody else', async () => {
    const ids = await fresh(12);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 6, maxDelayMs: 5 });
    const wrong = Object.assign(new Error('column "smtp_respons" does not exist'), { code: '42703' });
    spy.failWith(wrong);
    const failing = ids.slice(0, 6).map((id) => writer.submitted(id, '250 ok'));
    const results = await Promise.allSettled(failing);
    expect(results.map((r) => r.status)).toEqual(Array(6).fill('rejected'));
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBe(wrong);
    expect(spy.writes).toHaveLength(1);

    // The next batch, once the database is back, is written as usual.
    spy.failWith(undefined);
    await Promise.all(ids.slice(6).map((id) => writer.submitted(id, '250 ok')));
    const rows = await rowsOf(ids);
    expect(ids.slice(0, 6).map((id) => rows.get(id)!.status)).toEqual(Array(6).fill('sending'));
    expect(ids.slice(6).map((id) => rows.get(id)!.status)).toEqual(Array(6).fill('submitted'));
    await writer.close();
  });

  it('writes a batch again when Postgres rolled it back to break a deadlock, and its callers never see it', async () => {
    const [a, b] = await fresh(2);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 2, maxDelayMs: 60_000 });
    const other = await t.c.pool.connect();
    try {
      // Another transaction (a claim renewal, say) holds b, and will want a. Only the writer's
      // backend looks for the deadlock in time, so the writer is the one Postgres rolls back.
      expect(a!).toBeLessThan(b!);
      await other.query('BEGIN');
      await other.query(`SET LOCAL deadlock_timeout = '60s'`);
      await other.query('SELECT id FROM messages WHERE id = $1 FOR UPDATE', [b]);
      // Listed b first, but the write locks its rows in id order: it holds a and waits for b.
      const both = Promise.all([writer.submitted(b!, '250 b'), writer.submitted(a!, '250 a')]);
      await someoneWaitsForLock(t);
      await other.query('SAVEPOINT probe');
      await expect(other.query('SELECT id FROM messages WHERE id = $1 FOR UPDATE NOWAIT', [a])).rejects.toMatchObject({ code: '55P03' });
      await other.query('ROLLBACK TO SAVEPOINT probe');
      // Now a deadlock: the writer's statement is rolled back and this one gets a.
      await other.query('SELECT id FROM messages WHERE id = $1 FOR UPDATE', [a]);
      await other.query('ROLLBACK');
      await both;
    } finally {
      other.release();
    }
    expect(spy.writes.map((w) => w.ids)).toEqual([
      [b, a],
      [b, a],
    ]);
    const rows = await rowsOf([a!, b!]);
    expect([rows.get(a!), rows.get(b!)].map((r) => [r!.status, r!.smtp_response])).toEqual([
      ['submitted', '250 a'],
      ['submitted', '250 b'],
    ]);
    await writer.close();
  });

  it('writes nothing and waits for nothing when closed with nothing pending', async () => {
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log);
    await writer.close();
    expect(spy.writes).toEqual([]);
  });

  it('keeps a batch whose write lost Postgres and writes it again until it commits; its callers wait meanwhile', async () => {
    const ids = await fresh(8);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, t.c.log, { maxBatch: 8, maxDelayMs: 5 });
    // What pg says when Postgres goes away: a terminated backend, a refused connection, a cut one.
    const lost = [
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
    ];
    spy.failWith(lost[0]);
    let settled = 0;
    const all = Promise.all(ids.map((id) => writer.submitted(id, '250 ok').then(() => void settled++)));
    for (const err of lost) {
      spy.failWith(err);
      const tries = spy.writes.length;
      await until('another try of the write', () => spy.writes.length > tries, 10_000);
    }
    expect(settled).toBe(0);
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'sending')).toBe(true);

    spy.failWith(undefined);
    await all;
    expect(settled).toBe(8);
    // The same batch every time: nothing dropped, nothing split.
    expect(new Set(spy.writes.map((w) => w.ids.join(',')))).toEqual(new Set([ids.join(',')]));
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'submitted')).toBe(true);
    await writer.close();
  });

  it('writes a batch whose first write committed but whose answer was lost once more, harmlessly', async () => {
    const ids = await fresh(3);
    let calls = 0;
    // Commits, then reports the connection cut, as when Postgres dies between COMMIT and its answer.
    const flaky = {
      async query(q: unknown, p?: unknown[]) {
        const result = await (t.c.pool.query as (q: unknown, p?: unknown[]) => Promise<unknown>)(q, p);
        if (++calls === 1) throw new Error('Connection terminated unexpectedly');
        return result;
      },
    } as unknown as Pool;
    const writer = new StatusWriter(flaky, t.c.log, { maxBatch: 3, maxDelayMs: 5 });
    await Promise.all(ids.map((id) => writer.submitted(id, '250 first')));
    expect(calls).toBe(2);
    const rows = await rowsOf(ids);
    expect(ids.map((id) => rows.get(id)!.status)).toEqual(['submitted', 'submitted', 'submitted']);
    await writer.close();
  });

  it('records what the relay accepted even if the claim was given up meanwhile (queued again, or cancelled with its send), never over another outcome', async () => {
    const [queued, cancelled, bounced, failed, submitted] = await fresh(5);
    await t.c.pool.query(
      `UPDATE messages SET status = v.s::message_status, in_doubt = v.s = 'cancelled'
         FROM (VALUES ($1::bigint, 'queued'), ($2::bigint, 'cancelled'), ($3::bigint, 'bounced'), ($4::bigint, 'failed'), ($5::bigint, 'submitted')) AS v(id, s)
        WHERE messages.id = v.id`,
      [queued, cancelled, bounced, failed, submitted],
    );
    await t.c.pool.query(`UPDATE messages SET smtp_response = 'earlier' WHERE id = ANY($1::bigint[])`, [[bounced, failed, submitted]]);
    const writer = new StatusWriter(t.c.pool, t.c.log, { maxBatch: 500, maxDelayMs: 1 });
    await Promise.all([queued, cancelled, bounced, failed, submitted].map((id) => writer.submitted(id!, '250 late')));
    const { rows } = await t.c.pool.query('SELECT id, status::text, in_doubt, smtp_response FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id', [
      [queued, cancelled, bounced, failed, submitted],
    ]);
    expect(rows).toEqual([
      { id: queued, status: 'submitted', in_doubt: false, smtp_response: '250 late' },
      { id: cancelled, status: 'submitted', in_doubt: false, smtp_response: '250 late' },
      { id: bounced, status: 'bounced', in_doubt: false, smtp_response: 'earlier' },
      { id: failed, status: 'failed', in_doubt: false, smtp_response: 'earlier' },
      { id: submitted, status: 'submitted', in_doubt: false, smtp_response: 'earlier' },
    ]);
    await writer.close();
  });
});
