import type { TestContext } from './context.js';
import { editor } from './editor.js';

export type SeededMessage = { id: number; subscriberId: number; email: string; token: string };
export type SeededSend = { issueId: number; sendId: number; messages: SeededMessage[] };

let seeded = 0;

/**
 * A send whose messages the relay accepted, written straight to the tables: one active reader
 * per address (created unless they exist), one submitted message each, and each message's token
 * (the one in its VERP return path, X-Broadside-Message and Message-ID).
 */
export async function seedSubmittedSend(t: TestContext, emails: string[], sendStatus: 'done' | 'sending' = 'done'): Promise<SeededSend> {
  const issue = await editor(t).createIssue(`Seeded issue ${++seeded} ${Date.now()}`);
  await t.c.pool.query(
    `INSERT INTO subscribers (email, email_normalized, status, confirmed_at, consent_source)
     SELECT e, lower(e), 'active', now() - interval '1 day', 'import' FROM unnest($1::text[]) AS e
     ON CONFLICT (email_normalized) DO NOTHING`,
    [emails],
  );
  const {
    rows: [send],
  } = await t.c.pool.query<{ id: number }>(
    `INSERT INTO sends (issue_id, status, audience_at, started_at, fanout_done, total)
     VALUES ($1::bigint, $2::send_status, now(), now(), true, $3::int) RETURNING id`,
    [issue.id, sendStatus, emails.length],
  );
  const { rows } = await t.c.pool.query<{ id: number; subscriber_id: number; email: string }>(
    `INSERT INTO messages (send_id, subscriber_id, status, submitted_at, smtp_response)
     SELECT $1::bigint, s.id, 'submitted', now(), '250 2.0.0 Ok: queued'
       FROM unnest($2::text[]) WITH ORDINALITY AS u(e, i) JOIN subscribers s ON s.email_normalized = lower(u.e)
      ORDER BY u.i
     RETURNING id, subscriber_id, (SELECT email FROM subscribers WHERE id = subscriber_id) AS email`,
    [send!.id, emails],
  );
  return {
    issueId: issue.id,
    sendId: send!.id,
    messages: rows.map((r) => ({ id: r.id, subscriberId: r.subscriber_id, email: r.email, token: t.c.messageTokens.sign(r.id) })),
  };
}

export async function subscriberStatus(
  t: TestContext,
  id: number,
): Promise<{ status: string; bounced_at: Date | null; complained_at: Date | null; soft_bounces: Date[] | null }> {
  const { rows } = await t.c.pool.query('SELECT status::text, bounced_at, complained_at, soft_bounces FROM subscribers WHERE id = $1', [id]);
  return rows[0];
}

export async function messageStatus(t: TestContext, id: number): Promise<string> {
  const { rows } = await t.c.pool.query('SELECT status::text FROM messages WHERE id = $1', [id]);
  return rows[0].status;
}

export async function bouncesOf(t: TestContext, where = 'true', values: unknown[] = []): Promise<Record<string, unknown>[]> {
  const { rows } = await t.c.pool.query(`SELECT * FROM bounces WHERE ${where} ORDER BY id`, values);
  return rows;
}
