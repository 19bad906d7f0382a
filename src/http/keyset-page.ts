import Type from 'typebox';
import { invalidInput } from '../errors.js';

/**
 * Keyset paging, the one way every list of the API pages: the next page is the rows past the
 * last one shown (by id, or by whatever the list is ordered on), so a page is stable while rows
 * are added and costs the same at any depth. The client gets that key as an opaque cursor.
 */

/** The `cursor` of a list's query string: the `nextCursor` of the page before. */
export const CursorQuery = Type.String({ pattern: '^[0-9a-z]{1,12}$', description: 'nextCursor of the previous page' });

/** An id as a cursor: base 36, as short as the id allows. */
export const idCursor = (id: number): string => id.toString(36);

/**
 * The id a cursor stands for. Only what idCursor gives is one: a cursor this API never gave (a
 * value past 2⁵³, zero, leading zeros) is a 400 naming it, not a silently empty page.
 */
export function parseIdCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const id = parseInt(cursor, 36);
  if (!Number.isSafeInteger(id) || id < 1 || idCursor(id) !== cursor) {
    throw invalidInput(`cursor "${cursor}" is not a nextCursor this list gave: start again without a cursor`, { field: 'cursor' });
  }
  return id;
}

export type Page<R> = { items: R[]; next: string | null };

/**
 * One page of at most `limit` rows. `fetch` is asked for one row more than the page: whether that
 * row exists decides the next cursor, so the last page says null rather than leading to an empty
 * page.
 */
export async function keysetPage<R>(limit: number, fetch: (rows: number) => Promise<R[]>, cursorOf: (last: R) => string): Promise<Page<R>> {
  const rows = await fetch(limit + 1);
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit ? cursorOf(items[items.length - 1]!) : null };
}

/**
 * A page of a list ordered by id, from its query's `cursor` and `limit`. `fetch` gets the id the
 * cursor stands for (rows past it, in the list's order; undefined: from the start) and how many
 * rows to read.
 */
export async function idPage<R extends { id: number }>(
  query: { cursor?: string; limit: number },
  fetch: (keyset: { from: number | undefined; rows: number }) => Promise<R[]>,
): Promise<{ items: R[]; nextCursor: string | null }> {
  const from = parseIdCursor(query.cursor);
  const page = await keysetPage(
    query.limit,
    (rows) => fetch({ from, rows }),
    (last) => idCursor(last.id),
  );
  return { items: page.items, nextCursor: page.next };
}
