import { describe, expect, it } from '@jest/globals';
import { SqlFilters } from '../../src/db/sql-filters.js';

describe('SqlFilters', () => {
  it('leaves out every filter not given, and then writes no WHERE at all', () => {
    const f = new SqlFilters().optional('status = $1::text', undefined).optional('id > $1::bigint', undefined);
    expect(f.where).toBe('');
    expect(f.params).toEqual([]);
    expect(f.param(50)).toBe('$1');
    expect(f.params).toEqual([50]);
  });

  it('numbers the values of the filters given in order, and the parameters after them', () => {
    const since = new Date('2024-01-02T00:00:00Z');
    const f = new SqlFilters().optional('id > $1::bigint', 10).optional('status = $1::text', undefined).optional('created_at >= $1::timestamptz', since);
    expect(f.where).toBe('WHERE id > $1::bigint AND created_at >= $2::timestamptz');
    expect(`LIMIT ${f.param(20)}::int`).toBe('LIMIT $3::int');
    expect(f.params).toEqual([10, since, 20]);
  });

  it('keeps a given value that is falsy: only undefined means not given', () => {
    const f = new SqlFilters()
      .optional('a = $1::int', 0)
      .optional('b = $1::text', '')
      .optional('c = $1::boolean', false)
      .optional('d IS NOT DISTINCT FROM $1', null);
    expect(f.where).toBe('WHERE a = $1::int AND b = $2::text AND c = $3::boolean AND d IS NOT DISTINCT FROM $4');
    expect(f.params).toEqual([0, '', false, null]);
  });

  it('gives one value to every $1 of its condition, and a condition its own $1, $2, … however many come before', () => {
    const f = new SqlFilters()
      .add('published_at IS NOT NULL')
      .optional('kind = $1::text', 'x')
      .optional('(email LIKE $1::text OR lower(email) LIKE $1::text)', '%a%')
      .add('(published_at, id) < (to_timestamp($1::bigint), $2::bigint) AND $2::bigint > 0', 1700000000, 7);
    expect(f.where).toBe(
      'WHERE published_at IS NOT NULL AND kind = $1::text AND (email LIKE $2::text OR lower(email) LIKE $2::text)' +
        ' AND (published_at, id) < (to_timestamp($3::bigint), $4::bigint) AND $4::bigint > 0',
    );
    expect(f.params).toEqual(['x', '%a%', 1700000000, 7]);
  });

  it('refuses a condition whose placeholders do not match its values', () => {
    expect(() => new SqlFilters().add('a = $1 AND b = $2', 1)).toThrow(/\$1 to \$1/);
    expect(() => new SqlFilters().add('a = $1', 1, 2)).toThrow();
    expect(() => new SqlFilters().add('a = $2', 1)).toThrow();
    expect(() => new SqlFilters().add('a = $0', 1)).toThrow();
    expect(() => new SqlFilters().add('a IS NULL', 1)).toThrow();
    expect(() => new SqlFilters().optional('a IS NULL', 1)).toThrow();
  });
});
