// The statements a worker runs for every group of messages are planned once per connection and
// then run from Postgres's generic plan, whatever the size of the group. Postgres keeps planning
// a prepared statement afresh at each run when its first five (custom) plans look cheaper than
// the generic one, which happens when the arrays' sizes are visible to the planner and small:
// one or two messages a group, as with four workers on two cores. Each such plan of the claim
// cost ~1.4 ms of a backend's CPU, more than running it (seen with pg_stat_statements'
// track_planning in `npm run bench:send -- --workers 4`).
import { describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { claimMessages, claimMessagesRecording, markSubmitted } from '../../src/delivery/queries.js';
import { createSend, fanOutBatch } from '../../src/sending/queries.js';
import { useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { seedActiveReaders } from '../support/readers.js';

const t = useTestContext();
const { createIssue } = editor(t);

const RUNS = 30;

describe('the claim and submission statements', () => {
  it('are run from their generic plan after the first five, with groups of one or two messages', async () => {
    await seedActiveReaders(t, 3000);
    const issue = await createIssue({ subject: 'Plans', markdown: 'Text.' });
    const { send } = (await createSend(t.c.pool, issue.id, null))!;
    await fanOutBatch(t.c.pool, send, 10_000);
    await t.c.pool.query('ANALYZE messages');
    const { rows } = await t.c.pool.query<{ id: number }>(`SELECT id FROM messages WHERE send_id = $1 ORDER BY id`, [send.id]);
    const ids = rows.map((r) => r.id);
    expect(ids).toHaveLength(3000);

    let next = 0;
    // One connection: prepared statements and their plans belong to it.
    const client = await t.c.pool.connect();
    try {
      const on = client as unknown as Pool;
      const take = (n: number) => {
        const taken = ids.slice(next, next + n);
        next += n;
        return taken;
      };
      let waiting: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const size = 1 + (run % 2);
        const claims = await claimMessagesRecording(on, take(size), 600, { ids: waiting, responses: waiting.map(() => '250 2.0.0 Ok') });
        expect(claims).toHaveLength(size);
        waiting = claims.map((c) => c.id);
        const alone = await claimMessages(on, take(size), 600);
        expect(alone).toHaveLength(size);
        await markSubmitted(
          on,
          alone.map((c) => c.id),
          alone.map(() => '250 2.0.0 Ok'),
        );
      }
      await markSubmitted(
        on,
        waiting,
        waiting.map(() => '250 2.0.0 Ok'),
      );

      const { rows: plans } = await client.query<{ name: string; generic_plans: string; custom_plans: string }>(
        `SELECT name, generic_plans, custom_plans FROM pg_prepared_statements
          WHERE name IN ('claim-messages', 'claim-messages-recording', 'mark-submitted') ORDER BY name`,
      );
      // Five custom plans each, give or take one made again after the table's statistics
      // changed (autovacuum); the text that showed the sizes gave 30 and 31.
      expect(plans.map((p) => p.name)).toEqual(['claim-messages', 'claim-messages-recording', 'mark-submitted']);
      for (const p of plans) {
        expect(Number(p.custom_plans)).toBeLessThanOrEqual(8);
        expect(Number(p.generic_plans)).toBeGreaterThanOrEqual(RUNS - 8);
      }
    } finally {
      client.release();
    }
    // Every message taken was claimed and recorded.
    const { rows: counts } = await t.c.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE send_id = $1 AND status = 'submitted'`, [
      send.id,
    ]);
    expect(counts[0]!.n).toBe(next);
  });
});
