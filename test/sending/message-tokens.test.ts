import { describe, expect, it } from '@jest/globals';
import { MessageTokens } from '../../src/sending/message-tokens.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';

describe('MessageTokens', () => {
  const tokens = new MessageTokens(SECRET);

  it.each([1, 2, 35, 36, 1000, 123_456_789, 2 ** 31, Number.MAX_SAFE_INTEGER])('signs and verifies message %i', (id) => {
    const token = tokens.sign(id);
    // Lower case only, usable as a local part: m<id base36>-<16 hex>.
    expect(token).toMatch(/^m[0-9a-z]{1,12}-[0-9a-f]{16}$/);
    expect(token).toBe(`m${id.toString(36)}-${token.slice(-16)}`);
    expect(tokens.verify(token)).toBe(id);
  });

  it('gives each message its own token, the same every time, under the same secret', () => {
    expect(tokens.sign(42)).toBe(tokens.sign(42));
    expect(new MessageTokens(SECRET).sign(42)).toBe(tokens.sign(42));
    const many = new Set(Array.from({ length: 1000 }, (_, i) => tokens.sign(i + 1)));
    expect(many.size).toBe(1000);
  });

  it('verifies regardless of case (mail servers may fold the local part)', () => {
    const token = tokens.sign(987_654);
    expect(tokens.verify(token.toUpperCase())).toBe(987_654);
    expect(tokens.verify(token.replace(/[a-f]/g, (c) => c.toUpperCase()))).toBe(987_654);
  });

  it('rejects a token whose signature or id was changed', () => {
    const token = tokens.sign(1234);
    const sig = token.slice(-16);
    const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
    expect(tokens.verify(token.slice(0, -16) + flipped)).toBeUndefined();
    // Another message's id with this message's signature.
    expect(tokens.verify(`m${(1235).toString(36)}-${sig}`)).toBeUndefined();
    // Another message's signature with this message's id.
    expect(tokens.verify(`m${(1234).toString(36)}-${tokens.sign(1235).slice(-16)}`)).toBeUndefined();
  });

  it('rejects a token signed with another secret', () => {
    const foreign = new MessageTokens('another-secret-that-is-long-enough-9876543210');
    expect(foreign.sign(77)).not.toBe(tokens.sign(77));
    expect(tokens.verify(foreign.sign(77))).toBeUndefined();
    expect(foreign.verify(tokens.sign(77))).toBeUndefined();
  });

  it.each(['', 'm', 'm-', 'mabc', 'm1-', '../../etc/passwd', 'm-0123456789abcdef', 'mzzzzzzzzzzzzz-0123456789abcdef'])('rejects garbage: %j', (garbage) => {
    expect(tokens.verify(garbage)).toBeUndefined();
  });

  // Each of these is built around a valid token, so only its form can be what refuses it.
  const valid = tokens.sign(4321);
  it.each([
    ['a leading space', ` ${valid}`],
    ['a trailing space', `${valid} `],
    ['a trailing line break', `${valid}\n`],
    ['the VERP prefix', `bounces+${valid}`],
    ['a domain', `${valid}@bounces.example.com`],
    ['another separator', valid.replace('-', '_')],
    ['another prefix', `x${valid.slice(1)}`],
    ['a shortened signature', valid.slice(0, -1)],
    ['a longer signature', `${valid}0`],
    ['a non-ASCII letter', valid.replace(/^m/, 'ｍ')],
  ])('rejects a valid token with %s', (_what, token) => {
    expect(tokens.verify(valid)).toBe(4321);
    expect(tokens.verify(token)).toBeUndefined();
  });

  it('rejects a validly signed id that is not a message id (0) or out of range', () => {
    expect(tokens.verify(tokens.sign(0))).toBeUndefined();
    // 13 base-36 digits is past the pattern; 12 that exceed 2^53 are refused as unsafe.
    const big = 'zzzzzzzzzzzz';
    expect(parseInt(big, 36)).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
    const forged = (tokens as unknown as { signature(id36: string): string }).signature(big);
    expect(tokens.verify(`m${big}-${forged}`)).toBeUndefined();
  });
});
