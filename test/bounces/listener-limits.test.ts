import { describe, expect, it } from '@jest/globals';
import { clientKey, inNetworks, ReceiveBudget } from '../../src/bounces/inbound/listener-limits.js';
import { parseNetwork } from '../../src/config/networks.js';

describe('per-address limits count by client key', () => {
  it.each([
    ['an IPv4 address', '192.0.2.7', '192.0.2.7'],
    ['an IPv4-mapped address from a dual-stack socket, as the IPv4 one', '::ffff:192.0.2.7', '192.0.2.7'],
    ['an IPv6 address, by its /64', '2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['another address of the same /64, alike', '2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['loopback IPv6', '::1', '::/64'],
  ])('%s', (_what, address, key) => {
    expect(clientKey(address)).toBe(key);
  });

  it('keeps two /64s apart, and an address it cannot read as itself', () => {
    expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey(undefined)).toBe('unknown');
  });
});

describe('trusted networks', () => {
  const networks = ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'].map(parseNetwork);

  it.each([
    ['10.200.3.4', true],
    ['::ffff:10.1.1.1', true],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['2001:db8:ffff::1', true],
    ['2001:db9::1', false],
    ['11.0.0.1', false],
  ])('%s is trusted: %s', (address, trusted) => {
    expect(inNetworks(address, networks)).toBe(trusted);
  });

  it('trusts nobody when none is configured', () => {
    expect(inNetworks('127.0.0.1', [])).toBe(false);
  });

  it.each(['10.1/16', '10.0.0.0/33', 'relay.example.com', '::1/129', '10.0.0.0/8/8', '0x0a.0.0.1'])('refuses "%s"', (raw) => {
    expect(() => parseNetwork(raw)).toThrow(/is not an IP address or a network/);
  });
});

describe('the receive budget', () => {
  it('takes bytes while the total stays within the limit, and refuses a mail growing past it without taking anything', () => {
    const b = new ReceiveBudget(1000, 100);
    expect(b.take(0, 500)).toBe(true);
    expect(b.take(500, 400)).toBe(true);
    expect(b.held).toBe(900);
    expect(b.take(0, 200)).toBe(false);
    expect(b.held).toBe(900);
    b.release(900);
    expect(b.take(0, 200)).toBe(true);
    expect(b.held).toBe(200);
  });

  it("always takes a mail's first bytes, so a DSN is never refused for memory; the total stays under limit + mails × first bytes", () => {
    const b = new ReceiveBudget(1000, 100);
    expect(b.take(0, 1000)).toBe(true);
    for (let mail = 0; mail < 5; mail++) {
      expect(b.take(0, 60)).toBe(true);
      expect(b.take(60, 40)).toBe(true);
      expect(b.take(100, 1)).toBe(false);
    }
    expect(b.held).toBe(1000 + 5 * 100);
  });
});
