import { expect } from '@jest/globals';
import type { MessageStatus } from '../../src/shared/statuses.js';
import type { TestContext } from './context.js';
import { editor, type IssueInput } from './editor.js';
import type { Relay } from './relay.js';
import { until } from './wait.js';

// What the fault tests (test/chaos, test/sending/crash.test.ts) check about a send, against the
// message rows and the copies the relays received.

/** Creates an issue (given only a subject, a short one) and triggers its send through the in-process API. */
export async function startSend(t: TestContext, issue: IssueInput | string): Promise<{ issueId: number; sendId: number }> {
  const ed = editor(t);
  const created = await ed.createIssue(issue);
  const send = await ed.trigger(created.id);
  return { issueId: created.id, sendId: send.id };
}

export type Counts = Record<MessageStatus, number>;

/** The send's messages by status, every status present (0 when none). */
export async function messageCounts(t: TestContext, sendId: number): Promise<Counts> {
  const { rows } = await t.c.pool.query<{ status: MessageStatus; n: number }>(
    'SELECT status, count(*)::int AS n FROM messages WHERE send_id = $1 GROUP BY status',
    [sendId],
  );
  const out: Counts = { queued: 0, sending: 0, submitted: 0, failed: 0, bounced: 0, cancelled: 0 };
  for (const r of rows) out[r.status] = r.n;
  return out;
}

export async function sendStatus(t: TestContext, sendId: number): Promise<string> {
  const { rows } = await t.c.pool.query<{ status: string }>('SELECT status::text FROM sends WHERE id = $1', [sendId]);
  return rows[0]!.status;
}

/** Addresses of the readers whose message is `sending` right now: what a crash now leaves in flight. */
export async function inFlight(t: TestContext, sendId: number): Promise<Set<string>> {
  const { rows } = await t.c.pool.query<{ email: string }>(
    `SELECT s.email FROM messages m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.send_id = $1 AND m.status = 'sending'`,
    [sendId],
  );
  return new Set(rows.map((r) => r.email));
}

/** The copies some relays received together, per recipient address. */
export function copiesAt(relays: Relay[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of relays) for (const [a, n] of r.received) m.set(a, (m.get(a) ?? 0) + n);
  return m;
}

/**
 * The end state of a send that must reach everyone: each of the `readers` active readers has
 * exactly one message and it is `submitted`, and nobody else has one; the relays (together) got
 * at least one copy for each, nothing for anyone else, and a second copy only for an address in
 * `mayDuplicate` (what was in flight when a worker died; never a third). Returns the addresses
 * that got two.
 */
export async function expectEachReaderOnce(
  t: TestContext,
  sendId: number,
  readers: number,
  relays: Relay | Relay[],
  mayDuplicate: Set<string> = new Set(),
): Promise<string[]> {
  const { rows } = await t.c.pool.query<{ email: string; status: string; messages: number; submitted: number }>(
    `SELECT s.email, s.status::text,
            count(m.id)::int AS messages,
            count(m.id) FILTER (WHERE m.status = 'submitted')::int AS submitted
       FROM subscribers s LEFT JOIN messages m ON m.subscriber_id = s.id AND m.send_id = $1
      GROUP BY s.id ORDER BY s.id`,
    [sendId],
  );
  const active = rows.filter((r) => r.status === 'active');
  expect(active).toHaveLength(readers);
  expect(active.filter((r) => r.messages !== 1 || r.submitted !== 1)).toEqual([]);
  expect(rows.filter((r) => r.status !== 'active' && r.messages !== 0)).toEqual([]);
  expect(await messageCounts(t, sendId)).toEqual({ queued: 0, sending: 0, submitted: readers, failed: 0, bounced: 0, cancelled: 0 });

  const copies = copiesAt([relays].flat());
  const activeEmails = new Set(active.map((r) => r.email));
  // Nobody outside the audience got anything.
  expect([...copies.keys()].filter((a) => !activeEmails.has(a))).toEqual([]);
  // Every reader got the issue…
  expect(active.filter((r) => !copies.has(r.email)).map((r) => r.email)).toEqual([]);
  // …at most twice, and twice only when their message was in flight at a crash.
  const duplicated = [...copies].filter(([, n]) => n > 1).map(([a]) => a);
  expect([...copies].filter(([, n]) => n > 2)).toEqual([]);
  expect(duplicated.filter((a) => !mayDuplicate.has(a))).toEqual([]);
  expect(duplicated.length).toBeLessThanOrEqual(mayDuplicate.size);
  expect([...copies.values()].reduce((sum, n) => sum + n, 0)).toBe(readers + duplicated.length);
  return duplicated;
}

/**
 * Waits until a statement of another connection to the test's database waits for a lock: the
 * moment a race under test is decided by a row lock that a transaction of the test holds open.
 */
export async function someoneWaitsForLock(t: TestContext): Promise<void> {
  await until(
    'a statement waiting for a row lock',
    async () => {
      const { rows } = await t.c.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      return rows.length > 0;
    },
    10_000,
  );
}
