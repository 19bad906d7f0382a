// Claims grouped into one statement (src/delivery/claim-batcher.ts): each delivery gets its own
// message's claim, a message asked for twice is claimed once, a paused send's messages are not
// claimed, and a statement that fails fails each of its callers. The submissions waiting in a
// StatusWriter ride with a group of claims: one statement, one commit.
import { describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { ClaimBatcher } from '../../src/delivery/claim-batcher.js';
import { StatusWriter } from '../../src/delivery/status-writer.js';
import { createSend, fanOutBatch } from '../../src/sending/queries.js';
import { useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { addActiveReaders } from '../support/readers.js';

const t = useTestContext();
const { createIssue } = editor(t);

/** A send of a new issue to `n` new readers, and those readers' message rows, queued (no jobs: nothing else claims them). */
async function queuedMessages(n: number, tag: string): Promise<{ sendId: number; ids: number[] }> {
  await addActiveReaders(
    t,
    Array.from({ length: n }, (_, i) => `${tag}${i}@example.com`),
  );
  const issue = await createIssue({ subject: `Claims ${tag}`, markdown: 'Text.\n\n## One\n\nMore.' });
  const { send } = (await createSend(t.c.pool, issue.id, null))!;
  await fanOutBatch(t.c.pool, send, 10_000);
  // The send goes to every reader added so far: these are the new ones'.
  const { rows } = await t.c.pool.query<{ id: number }>(
    `SELECT m.id FROM messages m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.send_id = $1 AND m.status = 'queued' AND s.email ~ ('^' || $2 || '[0-9]+@example\\.com$') ORDER BY m.id`,
    [send.id, tag],
  );
  return { sendId: send.id, ids: rows.map((r) => r.id) };
}

/**
 * The pool, counting the statements that go through it by name (claim-messages,
 * claim-messages-recording, mark-submitted). `failNext(name, err)` makes the next statement of
 * that name fail with `err` instead of running.
 */
function counting(pool: Pool) {
  const counts = new Map<string, number>();
  const failures = new Map<string, Error>();
  const gates = new Map<string, Promise<void>>();
  const counted = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return async (q: { name?: string }, ...rest: unknown[]) => {
          const name = q?.name;
          if (name) {
            counts.set(name, (counts.get(name) ?? 0) + 1);
            const failure = failures.get(name);
            failures.delete(name);
            if (failure) throw failure;
            const gate = gates.get(name);
            gates.delete(name);
            await gate;
          }
          return (target.query as (...a: unknown[]) => unknown)(q, ...rest);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return {
    pool: counted,
    claims: () => counts.get('claim-messages') ?? 0,
    count: (name: string) => counts.get(name) ?? 0,
    failNext: (name: string, err: Error) => failures.set(name, err),
    /** Holds the next statement of that name until the function returned is called. */
    holdNext(name: string): () => void {
      let open: () => void = () => undefined;
      gates.set(name, new Promise<void>((resolve) => (open = resolve)));
      return () => open();
    },
  };
}

/** Claims the messages (so they are `sending`, as when their copies went out). */
async function claimed(ids: number[]): Promise<void> {
  const batcher = new ClaimBatcher(t.c.pool, 60);
  const claims = await Promise.all(ids.map((id) => batcher.claim(id)));
  expect(claims.every((c) => c !== undefined)).toBe(true);
}

async function statuses(ids: number[]): Promise<Map<number, { id: number; status: string; smtp_response: string | null }>> {
  const { rows } = await t.c.pool.query('SELECT id, status::text, smtp_response FROM messages WHERE id = ANY($1::bigint[])', [ids]);
  return new Map(rows.map((r) => [Number(r.id), r]));
}

describe('ClaimBatcher', () => {
  it('claims the messages asked for at once in one statement, each for its own caller, a repeat once', async () => {
    const { sendId, ids } = await queuedMessages(30, 'group');
    expect(ids).toHaveLength(30);
    const { pool, claims } = counting(t.c.pool);
    const batcher = new ClaimBatcher(pool, 60);
    const results = await Promise.all([...ids, ids[0]!].map((id) => batcher.claim(id)));
    expect(claims()).toBe(1);
    expect(results.slice(0, 30).map((c) => c?.id)).toEqual(ids);
    for (const c of results.slice(0, 30))
      expect(c).toMatchObject({ send_id: sendId, attempts: 1, subscriber_status: 'active', email: expect.stringMatching(/^group\d+@example\.com$/) });
    // The same message asked for twice: one caller has it.
    expect(results[30]).toBeUndefined();
    const { rows } = await t.c.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE send_id = $1 AND status = 'sending'`, [sendId]);
    expect(rows[0]!.n).toBe(30);
    // Claimed already (and renewed by a live worker): nobody else gets them.
    expect(await Promise.all(ids.slice(0, 3).map((id) => batcher.claim(id)))).toEqual([undefined, undefined, undefined]);
  });

  it('with gatherMs, claims asked for on later turns of the event loop go out in the same statement', async () => {
    const { ids } = await queuedMessages(3, 'gather');
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const spread = async (batcher: ClaimBatcher) => {
      const asked = [];
      for (const id of ids) {
        asked.push(batcher.claim(id));
        await turn();
        await turn();
      }
      return Promise.all(asked);
    };
    // Without it, the first claim has gone out before the second is asked for (the other two
    // go together if they are asked for while it runs).
    const alone = counting(t.c.pool);
    const first = await spread(new ClaimBatcher(alone.pool, 60));
    expect(alone.claims()).toBeGreaterThanOrEqual(2);
    expect(first.map((c) => c?.id)).toEqual(ids);
    // Queued again, then asked for the same way with a window far longer than those turns.
    await t.c.pool.query(`UPDATE messages SET status = 'queued' WHERE id = ANY($1::bigint[])`, [ids]);
    const gathered = counting(t.c.pool);
    const second = await spread(new ClaimBatcher(gathered.pool, 60, { gatherMs: 500 }));
    expect(gathered.claims()).toBe(1);
    expect(second.map((c) => [c?.id, c?.attempts])).toEqual(ids.map((id) => [id, 2]));
  });

  it("claims nothing of a paused send's", async () => {
    const { sendId, ids } = await queuedMessages(3, 'paused');
    await t.c.pool.query(`UPDATE sends SET status = 'paused' WHERE id = $1`, [sendId]);
    const batcher = new ClaimBatcher(t.c.pool, 60);
    expect(await Promise.all(ids.map((id) => batcher.claim(id)))).toEqual([undefined, undefined, undefined]);
  });

  it('fails each caller of a statement that fails', async () => {
    const failing = new Proxy(t.c.pool, {
      get(target, prop, receiver) {
        if (prop === 'query') return async () => Promise.reject(new Error('connection terminated'));
        return Reflect.get(target, prop, receiver);
      },
    });
    const batcher = new ClaimBatcher(failing, 60);
    const results = await Promise.allSettled([1, 2, 3].map((id) => batcher.claim(id)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
  });

  describe('with the submissions waiting in a StatusWriter', () => {
    /** A writer that never writes on its own during the test (its delay is a minute): only a claim statement or close() writes. */
    function setUp() {
      const counter = counting(t.c.pool);
      const writer = new StatusWriter(counter.pool, t.c.log, { maxBatch: 500, maxDelayMs: 60_000 });
      const batcher = new ClaimBatcher(counter.pool, 60, { riders: () => writer.takeWaiting() });
      return { ...counter, writer, batcher };
    }

    it('records them in the statement of the next claims: one statement for both, each caller answered once it committed', async () => {
      const { ids } = await queuedMessages(8, 'ride');
      const [sent, next] = [ids.slice(0, 4), ids.slice(4)];
      await claimed(sent);
      // One reader of those has soft bounces: the submission makes its message the reader's probe.
      const { rows } = await t.c.pool.query<{ subscriber_id: number }>(
        `UPDATE subscribers s SET soft_bounces = ARRAY[now()] FROM messages m WHERE m.id = $1 AND s.id = m.subscriber_id RETURNING s.id AS subscriber_id`,
        [sent[0]],
      );
      const { writer, batcher, count, claims } = setUp();
      let recorded = 0;
      const submissions = Promise.all(sent.map((id) => writer.submitted(id, `250 queued as Q${id}`).then(() => void recorded++)));
      await new Promise((r) => setImmediate(r));
      expect(recorded).toBe(0);

      const got = await Promise.all(next.map((id) => batcher.claim(id)));
      expect(got.map((c) => c?.id)).toEqual(next);
      await submissions;
      expect(recorded).toBe(4);
      expect([count('claim-messages-recording'), claims(), count('mark-submitted')]).toEqual([1, 0, 0]);
      const rowsNow = await statuses(ids);
      for (const id of sent) expect(rowsNow.get(id)).toEqual({ id, status: 'submitted', smtp_response: `250 queued as Q${id}` });
      for (const id of next) expect(rowsNow.get(id)!.status).toBe('sending');
      const probe = await t.c.pool.query(`SELECT soft_bounce_probe FROM subscribers WHERE id = $1`, [rows[0]!.subscriber_id]);
      expect(Number(probe.rows[0].soft_bounce_probe)).toBe(sent[0]);
      await writer.close();
    });

    it('submits and does not claim a message that is among both', async () => {
      const { ids } = await queuedMessages(3, 'both');
      await claimed([ids[0]!]);
      const { writer, batcher, count } = setUp();
      const submission = writer.submitted(ids[0]!, '250 ok');
      // Recovery took its claim for a dead worker's meanwhile (this worker was cut off from
      // Postgres), queued it again, and its job was fed again: the relay has it all the same.
      await t.c.pool.query(`UPDATE messages SET status = 'queued', claimed_at = NULL WHERE id = $1`, [ids[0]]);
      const got = await Promise.all(ids.map((id) => batcher.claim(id)));
      await submission;
      expect(got.map((c) => c?.id)).toEqual([undefined, ids[1], ids[2]]);
      expect(count('claim-messages-recording')).toBe(1);
      expect([...(await statuses(ids)).values()].map((r) => [r.id, r.status]).sort()).toEqual(
        [
          [ids[0], 'submitted'],
          [ids[1], 'sending'],
          [ids[2], 'sending'],
        ].sort(),
      );
      await writer.close();
    });

    it('writes them alone when the statement fails, and fails only its claims', async () => {
      const { ids } = await queuedMessages(4, 'fails');
      const [sent, next] = [ids.slice(0, 2), ids.slice(2)];
      await claimed(sent);
      const { writer, batcher, count, failNext } = setUp();
      const submissions = Promise.all(sent.map((id) => writer.submitted(id, '250 ok')));
      failNext('claim-messages-recording', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
      const got = await Promise.allSettled(next.map((id) => batcher.claim(id)));
      expect(got.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      await submissions;
      expect([count('claim-messages-recording'), count('mark-submitted')]).toEqual([1, 1]);
      const rowsNow = await statuses(ids);
      expect(sent.map((id) => rowsNow.get(id)!.status)).toEqual(['submitted', 'submitted']);
      expect(next.map((id) => rowsNow.get(id)!.status)).toEqual(['queued', 'queued']);
      await writer.close();
    });

    it('asks for the claims again when Postgres rolled the statement back to break a deadlock', async () => {
      const { ids } = await queuedMessages(4, 'deadlock');
      const [sent, next] = [ids.slice(0, 2), ids.slice(2)];
      await claimed(sent);
      const { writer, batcher, count, claims, failNext } = setUp();
      const submissions = Promise.all(sent.map((id) => writer.submitted(id, '250 ok')));
      failNext('claim-messages-recording', Object.assign(new Error('deadlock detected'), { code: '40P01' }));
      const got = await Promise.all(next.map((id) => batcher.claim(id)));
      expect(got.map((c) => c?.id)).toEqual(next);
      await submissions;
      // The failed statement, then its submissions alone and its claims again (in either order).
      expect(count('claim-messages-recording') + claims()).toBe(2);
      expect(count('mark-submitted')).toBe(1);
      const rowsNow = await statuses(ids);
      expect(ids.map((id) => rowsNow.get(id)!.status)).toEqual(['submitted', 'submitted', 'sending', 'sending']);
      await writer.close();
    });

    it('close() waits for submissions whose statement failed to be written alone', async () => {
      const { ids } = await queuedMessages(3, 'closing');
      const [sent, next] = [ids.slice(0, 2), ids.slice(2)];
      await claimed(sent);
      const { writer, batcher, count, failNext } = setUp();
      let recorded = 0;
      const submissions = Promise.all(sent.map((id) => writer.submitted(id, '250 ok').then(() => void recorded++)));
      failNext('claim-messages-recording', Object.assign(new Error('connection terminated unexpectedly'), { code: '08006' }));
      const claim = batcher.claim(next[0]!).catch((err: unknown) => err);
      // As soon as the statement has taken them, close: it must wait for the ride and the write after it.
      const deadline = Date.now() + 5000;
      while (count('claim-messages-recording') === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      expect(recorded).toBe(0);
      await writer.close();
      expect(recorded).toBe(2);
      await submissions;
      await claim;
      const rowsNow = await statuses(sent);
      expect(sent.map((id) => rowsNow.get(id)!.status)).toEqual(['submitted', 'submitted']);
    });

    it("hands a batch that is due to the claims' lane: it waits for the statement in flight and goes with the next claims", async () => {
      const { ids } = await queuedMessages(4, 'lane');
      const [sent, first, next] = [ids.slice(0, 2), ids[2]!, ids[3]!];
      await claimed(sent);
      const counter = counting(t.c.pool);
      // Due as soon as two wait (maxBatch), with no delay to wait for.
      const writer = new StatusWriter(counter.pool, t.c.log, { maxBatch: 2, maxDelayMs: 60_000 });
      const batcher = new ClaimBatcher(counter.pool, 60, { riders: () => writer.takeWaiting() });
      writer.carryBy(() => batcher.carry());
      const release = counter.holdNext('claim-messages');
      const firstClaim = batcher.claim(first);
      const deadline = Date.now() + 5000;
      while (counter.claims() === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      expect(counter.claims()).toBe(1);

      // Due while the claim statement is in flight: nothing else is written meanwhile.
      let recorded = 0;
      const submissions = Promise.all(sent.map((id) => writer.submitted(id, '250 ok').then(() => void recorded++)));
      const nextClaim = batcher.claim(next);
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect([counter.count('mark-submitted'), counter.count('claim-messages-recording'), recorded]).toEqual([0, 0, 0]);

      release();
      expect((await firstClaim)?.id).toBe(first);
      expect((await nextClaim)?.id).toBe(next);
      await submissions;
      expect([counter.claims(), counter.count('claim-messages-recording'), counter.count('mark-submitted')]).toEqual([1, 1, 0]);
      const rowsNow = await statuses(ids);
      expect(ids.map((id) => rowsNow.get(id)!.status)).toEqual(['submitted', 'submitted', 'sending', 'sending']);
      await writer.close();
    });

    it('writes a due batch in the lane on its own when no claim comes', async () => {
      const { ids } = await queuedMessages(2, 'alone');
      await claimed(ids);
      const counter = counting(t.c.pool);
      const writer = new StatusWriter(counter.pool, t.c.log, { maxBatch: 500, maxDelayMs: 5 });
      const batcher = new ClaimBatcher(counter.pool, 60, { riders: () => writer.takeWaiting() });
      writer.carryBy(() => batcher.carry());
      await Promise.all(ids.map((id) => writer.submitted(id, '250 ok')));
      expect([counter.claims(), counter.count('claim-messages-recording'), counter.count('mark-submitted')]).toEqual([0, 0, 1]);
      expect([...(await statuses(ids)).values()].map((r) => r.status)).toEqual(['submitted', 'submitted']);
      await writer.close();
    });
  });
});
