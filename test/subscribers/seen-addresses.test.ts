import { describe, expect, it } from '@jest/globals';
import { SeenAddresses } from '../../src/subscribers/seen-addresses.js';

describe('SeenAddresses', () => {
  it('says an address is new the first time and a repeat every time after', () => {
    const seen = new SeenAddresses();
    expect(seen.add('ada@example.com')).toBe(true);
    expect(seen.add('grace@example.org')).toBe(true);
    expect(seen.add('ada@example.com')).toBe(false);
    expect(seen.add('ada@example.com')).toBe(false);
    expect(seen.add('grace@example.org')).toBe(false);
    expect(seen.size).toBe(2);
  });

  it("compares the strings it is given exactly: normalising is the caller's", () => {
    const seen = new SeenAddresses();
    expect(seen.add('ada@example.com')).toBe(true);
    expect(seen.add('Ada@example.com')).toBe(true);
    expect(seen.add('ada@example.com ')).toBe(true);
    expect(seen.add('')).toBe(true);
    expect(seen.add('')).toBe(false);
  });

  it('still finds every address after growing many times over', () => {
    const seen = new SeenAddresses();
    const n = 300_000;
    const newOnes = Array.from({ length: n }, (_, i) => seen.add(`reader${i}@example.com`));
    expect(newOnes.every((added) => added)).toBe(true);
    const repeats = Array.from({ length: n }, (_, i) => seen.add(`reader${i}@example.com`));
    expect(repeats.some((added) => added)).toBe(false);
    expect(seen.size).toBe(n);
  });

  // The reason it exists: a Set of a million 30-character addresses holds about 85 MB alive
  // until the last row.
  it('holds a million addresses in at most 32 bytes each', () => {
    const seen = new SeenAddresses();
    const n = 1_000_000;
    for (let i = 0; i < n; i++) seen.add(`reader${i}@bulk.example.com`);
    expect(seen.size).toBe(n);
    expect(seen.bytes).toBeLessThanOrEqual(32 * n);
    expect(seen.bytes).toBeGreaterThanOrEqual(16 * n);
  }, 60_000);
});
