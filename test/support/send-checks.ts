import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from '@jest/globals';
import type { MessageStatus } from '../../src/sending/queries.js';
import type { TestContext } from './context.js';
import type { Relay } from './relay.js';

// What the fault tests (test/chaos) check about a send, against the message rows and the copies
// a relay received.

/** `n` active readers `reader<i>@example.com`, confirmed an hour ago, written in one statement. */
export async function seedActiveReaders(t: TestContext, n: number): Promise<void> {
  await t.c.pool.query(
    `INSERT INTO subscribers (email, email_normalized, name, status, confirmed_at, consent_source)
     SELECT 'reader' || i || '@example.com', 'reader' || i || '@example.com', 'Reader ' || i, 'active', now() - interval '1 hour', 'import'
       FROM generate_series(1, $1::int) i`,
    [n],
  );
}

/** Creates an issue and triggers its send through the in-process API. */
export async function startSend(t: TestContext, subject: string): Promise<{ issueId: number; sendId: number }> {
  const created = await t.app.inject({ method: 'POST', url: '/api/issues', headers: t.auth, payload: { subject, markdown: `Intro of ${subject}.\n\n## Section\n\nText.` } });
  if (created.statusCode !== 201) throw new Error(`POST /api/issues: ${created.statusCode} ${created.body}`);
  const issueId = (created.json() as { id: number }).id;
  const sent = await t.app.inject({ method: 'POST', url: `/api/issues/${issueId}/send`, headers: t.auth, payload: {} });
  if (sent.statusCode !== 202) throw new Error(`POST /api/issues/${issueId}/send: ${sent.statusCode} ${sent.body}`);
  return { issueId, sendId: (sent.json() as { id: number }).id };
}

export type Counts = Record<MessageStatus, number>;

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

/**
 * The end state of a send that must reach everyone: each of the `readers` active readers has
 * exactly one message and it is `submitted`; the relay got at least one copy for each, nothing
 * for anyone else, and a second copy only for an address in `mayDuplicate` (never a third).
 * Returns the addresses that got two.
 */
export async function expectEachReaderOnce(t: TestContext, sendId: number, readers: number, relay: Relay, mayDuplicate: Set<string> = new Set()): Promise<string[]> {
  const { rows } = await t.c.pool.query<{ email: string; messages: number; submitted: number }>(
    `SELECT s.email, count(m.id)::int AS messages, count(m.id) FILTER (WHERE m.status = 'submitted')::int AS submitted
       FROM subscribers s LEFT JOIN messages m ON m.subscriber_id = s.id AND m.send_id = $1
      WHERE s.status = 'active'
      GROUP BY s.id ORDER BY s.id`,
    [sendId],
  );
  expect(rows).toHaveLength(readers);
  expect(rows.filter((r) => r.messages !== 1 || r.submitted !== 1)).toEqual([]);
  expect(await messageCounts(t, sendId)).toEqual({ queued: 0, sending: 0, submitted: readers, failed: 0, bounced: 0, cancelled: 0 });
  const active = new Set(rows.map((r) => r.email));
  expect([...relay.received.keys()].filter((a) => !active.has(a))).toEqual([]);
  expect([...active].filter((a) => !relay.received.has(a))).toEqual([]);
  expect([...relay.received].filter(([, n]) => n > 2)).toEqual([]);
  const duplicated = relay.duplicated();
  expect(duplicated.filter((a) => !mayDuplicate.has(a))).toEqual([]);
  expect(relay.total()).toBe(readers + duplicated.length);
  return duplicated;
}

/** Polls `probe` until it returns something other than undefined/false, or fails after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, describeLast?: () => Promise<string> | string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const last = describeLast ? ` (last: ${await describeLast()})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${last}`);
    }
    await sleep(100);
  }
}
