import { describe, expect, it } from '@jest/globals';
import { idCursor, idPage, keysetPage, parseIdCursor } from '../../src/http/keyset-page.js';
import { AppError } from '../../src/errors.js';

const rowsWithIds = (ids: number[]) => ids.map((id) => ({ id }));

describe('id cursors', () => {
  it('read back every id they were made from', () => {
    for (const id of [1, 35, 36, 1295, 123_456_789, Number.MAX_SAFE_INTEGER]) expect(parseIdCursor(idCursor(id))).toBe(id);
    expect(idCursor(36)).toBe('10');
    expect(parseIdCursor(undefined)).toBeUndefined();
  });

  it('refuse what no id makes (past 2^53, zero, leading zeros) as 400 invalid_input naming the cursor', () => {
    for (const foreign of ['zzzzzzzzzzzz', (Number.MAX_SAFE_INTEGER + 1).toString(36), '0', '00', '01', '0a']) {
      let thrown: unknown;
      try {
        parseIdCursor(foreign);
      } catch (err) {
        thrown = err;
      }
      expect([foreign, thrown]).toEqual([foreign, expect.any(AppError)]);
      expect(thrown).toMatchObject({ status: 400, code: 'invalid_input', details: { field: 'cursor' } });
      expect((thrown as Error).message).toContain(`cursor "${foreign}"`);
    }
  });
});

describe('keysetPage', () => {
  it('asks for one row more than the page, and gives a next cursor only when that row came', async () => {
    const asked: number[] = [];
    const fetch = (available: number) => async (rows: number) => {
      asked.push(rows);
      return rowsWithIds(Array.from({ length: Math.min(rows, available) }, (_, i) => i + 1));
    };
    const cursorOf = (last: { id: number }) => `after-${last.id}`;
    expect(await keysetPage(3, fetch(10), cursorOf)).toEqual({ items: rowsWithIds([1, 2, 3]), next: 'after-3' });
    // Exactly a page's worth: the last page, not a cursor to an empty one.
    expect(await keysetPage(3, fetch(3), cursorOf)).toEqual({ items: rowsWithIds([1, 2, 3]), next: null });
    expect(await keysetPage(3, fetch(2), cursorOf)).toEqual({ items: rowsWithIds([1, 2]), next: null });
    expect(await keysetPage(3, fetch(0), cursorOf)).toEqual({ items: [], next: null });
    expect(asked).toEqual([4, 4, 4, 4]);
  });
});

describe('idPage', () => {
  // Ids 1..25, newest first, as a list ordered by id descending reads them.
  const table = Array.from({ length: 25 }, (_, i) => 25 - i);
  const newestFirst = async ({ from, rows }: { from: number | undefined; rows: number }) =>
    rowsWithIds(table.filter((id) => from === undefined || id < from).slice(0, rows));

  it('walks a list from its first page to its last, each row once', async () => {
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await idPage({ cursor, limit: 10 }, newestFirst);
      seen.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(table);
  });

  it('hands the fetch the id the cursor stands for, and refuses a foreign cursor before fetching', async () => {
    const calls: unknown[] = [];
    const spy = async (keyset: { from: number | undefined; rows: number }) => {
      calls.push(keyset);
      return [];
    };
    await idPage({ limit: 5 }, spy);
    await idPage({ cursor: idCursor(1000), limit: 5 }, spy);
    await expect(idPage({ cursor: 'zzzzzzzzzzzz', limit: 5 }, spy)).rejects.toMatchObject({ code: 'invalid_input' });
    expect(calls).toEqual([
      { from: undefined, rows: 6 },
      { from: 1000, rows: 6 },
    ]);
  });
});
