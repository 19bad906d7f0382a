// What the bounce listener allows one client and all of them together. Pure: no sockets, no
// database, so each rule is tested on its own (test/bounces/listener-limits.test.ts).
import ipaddr from 'ipaddr.js';
import type { Network } from '../../config/networks.js';

/**
 * The key a client's per-address limits are counted under: the IPv4 address (also when it arrives
 * IPv4-mapped, `::ffff:a.b.c.d`, on a dual-stack socket), or the /64 of an IPv6 address. One
 * IPv6 host is routinely given a whole /64, so counting single addresses would hand it 2^64
 * separate allowances.
 */
export function clientKey(remoteAddress: string | undefined): string {
  if (!remoteAddress || !ipaddr.isValid(remoteAddress)) return remoteAddress || 'unknown';
  const ip = ipaddr.process(remoteAddress);
  if (ip.kind() === 'ipv4') return ip.toString();
  const prefix = (ip as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...prefix, 0, 0, 0, 0]).toString()}/64`;
}

/** Whether the client's address is inside one of the networks (IPv4-mapped IPv6 counts as IPv4). */
export function inNetworks(remoteAddress: string | undefined, networks: readonly Network[]): boolean {
  if (!remoteAddress || networks.length === 0 || !ipaddr.isValid(remoteAddress)) return false;
  const ip = ipaddr.process(remoteAddress);
  return networks.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits));
}

/**
 * The bytes of incoming mail the listener holds in memory, across every connection: from the
 * first byte of DATA until the mail is stored (or refused). Past `limit`, a mail that grows is
 * refused (452) and what it held is let go at once, so the others go on.
 *
 * A mail's first `alwaysBytes` are taken whatever the total: a DSN (~3 KB) or a feedback report
 * is never refused for memory because strangers are sending big mail at the same moment.
 * Each connection has at most one mail in flight, so the bytes held never pass
 * `limit + connections × alwaysBytes`.
 */
export class ReceiveBudget {
  private heldBytes = 0;

  constructor(
    readonly limit: number,
    readonly alwaysBytes: number,
  ) {}

  get held(): number {
    return this.heldBytes;
  }

  /** Takes `n` more bytes for a mail that holds `mine` already; false (nothing taken) past the budget. */
  take(mine: number, n: number): boolean {
    if (mine + n > this.alwaysBytes && this.heldBytes + n > this.limit) return false;
    this.heldBytes += n;
    return true;
  }

  release(n: number): void {
    this.heldBytes -= n;
  }
}
