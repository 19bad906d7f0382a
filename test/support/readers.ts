import type { Container } from '../../src/container.js';
import type { TestContext } from './context.js';

export type Reader = { id: number; email: string; name: string | null; status: string };
export type NewReader = { email: string; name?: string | null; status?: 'active' | 'pending' | 'unsubscribed' | 'bounced' };

/**
 * Readers written straight to the table, as an import leaves them: email_normalized is
 * lower(email), consent source `import`; all but the pending ones confirmed a day ago, the
 * unsubscribed and bounced ones gone an hour ago. Rows are inserted, and returned, in the order
 * given, so ids rise in that order (the fan-out takes the audience by id).
 */
export async function addReaders(t: TestContext, readers: NewReader[]): Promise<Reader[]> {
  const { rows } = await t.c.pool.query<Reader>(
    `INSERT INTO subscribers (email, email_normalized, name, status, confirmed_at, unsubscribed_at, bounced_at, consent_source)
     SELECT e, lower(e), n, s::subscriber_status,
            CASE WHEN s = 'pending' THEN NULL ELSE now() - interval '1 day' END,
            CASE WHEN s = 'unsubscribed' THEN now() - interval '1 hour' END,
            CASE WHEN s = 'bounced' THEN now() - interval '1 hour' END,
            'import'
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(e, n, s, i)
      ORDER BY i
     RETURNING id, email, name, status::text`,
    [readers.map((r) => r.email), readers.map((r) => r.name ?? null), readers.map((r) => r.status ?? 'active')],
  );
  const byEmail = new Map(rows.map((r) => [r.email, r]));
  return readers.map((r) => byEmail.get(r.email)!);
}

/** Active readers with these addresses and no name, in the order given. */
export function addActiveReaders(t: TestContext, emails: string[]): Promise<Reader[]> {
  return addReaders(
    t,
    emails.map((email) => ({ email })),
  );
}

/**
 * `n` active readers `reader<i>@example.com` (i from 1), imported and confirmed an hour ago, in
 * one INSERT … SELECT generate_series: what a send to many readers needs, fast even for a
 * million. Reader i is named `Reader <i>` when i is a multiple of `namedEvery` (by default all
 * are; 0: none).
 */
export async function seedActiveReaders(t: { c: Pick<Container, 'pool'> }, n: number, opts: { namedEvery?: number } = {}): Promise<void> {
  await t.c.pool.query(
    `INSERT INTO subscribers (email, email_normalized, name, status, confirmed_at, consent_source)
     SELECT 'reader' || i || '@example.com', 'reader' || i || '@example.com',
            CASE WHEN $2::int = 0 THEN NULL WHEN i % $2::int = 0 THEN 'Reader ' || i END,
            'active', now() - interval '1 hour', 'import'
       FROM generate_series(1, $1::int) i`,
    [n, opts.namedEvery ?? 1],
  );
}
