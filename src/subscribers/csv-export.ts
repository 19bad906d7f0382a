import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { Pool } from '../db/pool.js';
import { listSubscribers, type ListFilter, type SubscriberRow } from './queries.js';

export const exportColumns = [
  'id',
  'email',
  'name',
  'status',
  'created_at',
  'confirmed_at',
  'unsubscribed_at',
  'bounced_at',
  'complained_at',
  'consent_source',
  'consent_at',
  'consent_ip',
] as const;

// A spreadsheet runs a cell that starts with =, +, -, @, a tab or a CR as a formula.
// Names are free text from the sign-up form, and an address may start with them too
// (`=1+1@example.com` is valid), so both are written with a leading ' that the import takes off
// again. A value that already starts with ' and then one of them gets one more ', so the import
// restores it exactly: `'=x` → `''=x` → `'=x`.
const FORMULA_START = /^'*[=+\-@\t\r]/;

function guardFormula(v: string): string {
  return FORMULA_START.test(v) ? `'${v}` : v;
}

export function unguardFormula(v: string): string {
  return v.startsWith("'") && FORMULA_START.test(v.slice(1)) ? v.slice(1) : v;
}

/** The columns written through guardFormula: free text a reader chose. */
const GUARDED = ['email', 'name'] as const;

const PAGE = 1000;

async function* rowsOf(pool: Pool, filter: Omit<ListFilter, 'afterId' | 'limit'>, first: SubscriberRow[]): AsyncGenerator<string[]> {
  for (let rows = first; ; rows = await listSubscribers(pool, { ...filter, afterId: rows[rows.length - 1]!.id, limit: PAGE })) {
    for (const r of rows) {
      yield exportColumns.map((col) => {
        const v = r[col];
        return v instanceof Date ? v.toISOString() : v === null || v === undefined ? '' : String(v);
      });
    }
    if (rows.length < PAGE) return;
  }
}

/**
 * The subscriber list as CSV, streamed page by page (keyset), never held whole in memory. The
 * first page is read before anything is sent: a Postgres that cannot be reached is then a 503,
 * not a download cut off after its header row.
 */
export async function exportCsv(pool: Pool, filter: Omit<ListFilter, 'afterId' | 'limit'>): Promise<Readable> {
  const first = await listSubscribers(pool, { ...filter, limit: PAGE });
  const guarded = GUARDED.map((col) => exportColumns.indexOf(col));
  const source = Readable.from(
    (async function* () {
      yield [...exportColumns];
      for await (const row of rowsOf(pool, filter, first)) {
        for (const at of guarded) row[at] = guardFormula(row[at]!);
        yield row;
      }
    })(),
  );
  // pipeline, not pipe: a failed query must end the response with an error instead of leaving it
  // open, and a client that goes away must stop the paging.
  return pipeline(source, stringify(), () => {});
}
