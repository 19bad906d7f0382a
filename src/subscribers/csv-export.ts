import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { Pool } from '../db/pool.js';
import { listSubscribers, type ListFilter, type SubscriberRow } from './queries.js';

export const exportColumns = [
  'id', 'email', 'name', 'status', 'created_at', 'confirmed_at', 'unsubscribed_at', 'bounced_at', 'complained_at',
  'consent_source', 'consent_at', 'consent_ip',
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

async function* rowsOf(pool: Pool, filter: Omit<ListFilter, 'afterId' | 'limit'>): AsyncGenerator<string[]> {
  let afterId: number | undefined;
  for (;;) {
    const rows: SubscriberRow[] = await listSubscribers(pool, { ...filter, afterId, limit: 1000 });
    for (const r of rows) {
      yield exportColumns.map((col) => {
        const v = r[col];
        return v instanceof Date ? v.toISOString() : v === null || v === undefined ? '' : String(v);
      });
    }
    if (rows.length < 1000) return;
    afterId = rows[rows.length - 1]!.id;
  }
}

/** The subscriber list as CSV, streamed page by page (keyset), never held whole in memory. */
export function exportCsv(pool: Pool, filter: Omit<ListFilter, 'afterId' | 'limit'>): Readable {
  const guarded = GUARDED.map((col) => exportColumns.indexOf(col));
  const source = Readable.from((async function* () {
    yield [...exportColumns];
    for await (const row of rowsOf(pool, filter)) {
      for (const at of guarded) row[at] = guardFormula(row[at]!);
      yield row;
    }
  })());
  // pipeline, not pipe: a failed query must end the response with an error instead of leaving it
  // open, and a client that goes away must stop the paging.
  return pipeline(source, stringify(), () => {});
}
