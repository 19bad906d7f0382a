import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** An address or a network: the address and its prefix length (32 or 128 for one address). */
export type Network = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * An address (`192.0.2.7`, `2001:db8::1`) or a network (`10.0.0.0/8`, `2001:db8::/32`), strictly
 * written: `isIP` refuses the loose forms ipaddr.js would also take (`10`, `0x0a.1`).
 * Throws a plain Error with the reason.
 */
export function parseNetwork(raw: string): Network {
  const [address = '', bits, ...rest] = raw.trim().split('/');
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  if (family === 0 || rest.length > 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits)) || Number(bits ?? max) > max) {
    throw new Error(`"${raw}" is not an IP address or a network such as 10.0.0.0/8`);
  }
  return [ipaddr.parse(address), Number(bits ?? max)];
}
