import { beforeAll, describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { StatusWriter } from '../../src/delivery/status-writer.js';
import { useTestContext } from '../support/context.js';

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
    const writer = new StatusWriter(spy.pool, 500, 10);
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
    const writer = new StatusWriter(spy.pool, 500, 50);
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
    const writer = new StatusWriter(spy.pool, 10, 5);
    spy.hold();
    const resolvedAt = new Map<number, number>();
    const all = Promise.all(ids.map((id) => writer.submitted(id, '250 ok').then(() => {
      resolvedAt.set(id, spy.tick());
    })));

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
    const writer = new StatusWriter(spy.pool, 500, 60_000);
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
    const writer = new StatusWriter(spy.pool, 5, 60_000);
    spy.hold();
    const all = Promise.all(ids.map((id) => writer.submitted(id, '250 ok')));
    expect(spy.writes).toHaveLength(1);
    let closed = false;
    const closing = writer.close().then(() => void (closed = true));
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    spy.release();
    await closing;
    await all;
    expect([...(await rowsOf(ids)).values()].every((r) => r.status === 'submitted')).toBe(true);
  });

  it('rejects every caller of a batch whose write fails, and nobody else', async () => {
    const ids = await fresh(12);
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool, 6, 5);
    spy.failWith(new Error('connection terminated'));
    const failing = ids.slice(0, 6).map((id) => writer.submitted(id, '250 ok'));
    const results = await Promise.allSettled(failing);
    expect(results.map((r) => r.status)).toEqual(Array(6).fill('rejected'));
    for (const r of results) expect((r as PromiseRejectedResult).reason).toEqual(new Error('connection terminated'));

    // The next batch, once the database is back, is written as usual.
    spy.failWith(undefined);
    await Promise.all(ids.slice(6).map((id) => writer.submitted(id, '250 ok')));
    const rows = await rowsOf(ids);
    expect(ids.slice(0, 6).map((id) => rows.get(id)!.status)).toEqual(Array(6).fill('sending'));
    expect(ids.slice(6).map((id) => rows.get(id)!.status)).toEqual(Array(6).fill('submitted'));
    await writer.close();
  });

  it('writes nothing and waits for nothing when closed with nothing pending', async () => {
    const spy = spyPool(t.c.pool);
    const writer = new StatusWriter(spy.pool);
    await writer.close();
    expect(spy.writes).toEqual([]);
  });

  it('only records messages still claimed: a row that left "sending" meanwhile is left as it is', async () => {
    const [id] = await fresh(1);
    await t.c.pool.query(`UPDATE messages SET status = 'cancelled' WHERE id = $1`, [id]);
    const writer = new StatusWriter(t.c.pool, 500, 1);
    await writer.submitted(id!, '250 ok');
    expect((await rowsOf([id!])).get(id!)!.status).toBe('cancelled');
    await writer.close();
  });
});
