import { BlockList, isIPv4 } from 'node:net';
import { PROXY_RANGES, type TrustProxy } from '../config/schema.js';

/**
 * Fastify's `trustProxy` for our setting. A hop count is given as a function: Fastify 5 takes a
 * bare number as "trust nobody" (it cannot check the nearest peer), which would key every
 * reader's rate limit on the proxy's address. With a function, X-Forwarded-For is read from the
 * right: the nearest `hops` entries are proxies, the one before them is the client, and whatever
 * the client wrote further left is never believed.
 */
export function trustProxyOption(trust: TrustProxy): false | ((address: string, hop: number) => boolean) {
  if (trust === false) return false;
  if ('hops' in trust) {
    const { hops } = trust;
    return (_address, hop) => hop < hops;
  }
  const isProxy = proxyMatcher(trust.addresses);
  return (address) => isProxy(address);
}

/** Whether an address is one of these IPs or ranges (IPv4-mapped IPv6 addresses count as IPv4). */
export function proxyMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => PROXY_RANGES[e] ?? [e])) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  // Asked for every request (Fastify walks X-Forwarded-For through it), and BlockList.check
  // builds a SocketAddress each time: the answers are kept, for a bounded number of addresses.
  const known = new Map<string, boolean>();
  return (address) => {
    let trusted = known.get(address);
    if (trusted === undefined) {
      trusted = list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
      if (known.size >= 10_000) known.clear();
      known.set(address, trusted);
    }
    return trusted;
  };
}
