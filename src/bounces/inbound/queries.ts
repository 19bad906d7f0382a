// SQL for the mail the bounce listener keeps, byte for byte, in inbound_reports (its retention:
// retention.ts).
import type { Pool } from '../../db/pool.js';

/**
 * Keeps a mail the listener accepted. Undefined when the very same bytes were stored before (the
 * sender retried after losing our reply): the caller answers 250 and records nothing twice.
 */
export async function storeInboundReport(
  pool: Pool,
  r: { mailFrom: string | null; rcptTo: string; kind: string; raw: Buffer; sha256: Buffer },
): Promise<number | undefined> {
  const { rows } = await pool.query<{ id: number }>(
    `INSERT INTO inbound_reports (mail_from, rcpt_to, kind, size, sha256, raw)
     VALUES ($1::text, $2::text, $3::text, $4::int, $5::bytea, $6::bytea)
     ON CONFLICT (sha256) DO NOTHING RETURNING id`,
    [r.mailFrom?.slice(0, 320) ?? null, r.rcptTo.slice(0, 320), r.kind, r.raw.length, r.sha256, r.raw],
  );
  return rows[0]?.id;
}

/** The report already stored with these bytes (when storeInboundReport found it there). */
export async function findInboundReportId(pool: Pool, sha256: Buffer): Promise<number | null> {
  const { rows } = await pool.query<{ id: number }>('SELECT id FROM inbound_reports WHERE sha256 = $1::bytea', [sha256]);
  return rows[0]?.id ?? null;
}
