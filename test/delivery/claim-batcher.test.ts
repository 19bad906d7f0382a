// Claims grouped into one statement (src/delivery/claim-batcher.ts): each delivery gets its own
// message's claim, a message asked for twice is claimed once, a paused send's messages are not
// claimed, and a statement that fails fails each of its callers.
import { describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { ClaimBatcher } from '../../src/delivery/claim-batcher.js';
import { createSend, fanOutBatch } from '../../src/sending/queries.js';
import { useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { addActiveReaders } from '../support/readers.js';

const t = useTestContext();
const { createIssue } = editor(t);

/** A send of a new issue to `n` new readers, its message rows queued (no jobs: nothing else claims them). */
async function queuedMessages(n: number, tag: string): Promise<{ sendId: number; ids: number[] }> {
  await addActiveReaders(
    t,
    Array.from({ length: n }, (_, i) => `${tag}${i}@example.com`),
  );
  const issue = await createIssue({ subject: `Claims ${tag}`, markdown: 'Text.\n\n## One\n\nMore.' });
  const { send } = (await createSend(t.c.pool, issue.id, null))!;
  await fanOutBatch(t.c.pool, send, 10_000);
  const { rows } = await t.c.pool.query<{ id: number }>(`SELECT id FROM messages WHERE send_id = $1 AND status = 'queued' ORDER BY id`, [send.id]);
  return { sendId: send.id, ids: rows.map((r) => r.id) };
}

/** The pool, counting the claim statements that go through it. */
function counting(pool: Pool): { pool: Pool; claims: () => number } {
  let n = 0;
  const counted = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return (q: { name?: string }, ...rest: unknown[]) => {
          if (q?.name === 'claim-messages') n++;
          return (target.query as (...a: unknown[]) => unknown)(q, ...rest);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { pool: counted, claims: () => n };
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
});
