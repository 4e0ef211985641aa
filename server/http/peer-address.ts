import { isIPv4, isIPv6 } from "node:net";

/**
 * The key one peer's connections are counted under: an IPv4 address (IPv4-mapped IPv6 included),
 * or the /64 prefix of an IPv6 address, since one host usually holds a whole /64 and could
 * otherwise open each connection from a new address.
 */
export function peerKey(address: string | undefined): string {
  if (!address) return "(unknown)";
  if (address.startsWith("::ffff:") && isIPv4(address.slice(7))) return address.slice(7);
  if (!isIPv6(address)) return address;
  return `${ipv6Groups(address).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const bare = address.split("%", 1)[0]!.toLowerCase();
  const [head, tail] = bare.includes("::") ? bare.split("::", 2) : [bare, undefined];
  const split = (s: string | undefined) => (s ? s.split(":") : []);
  const expand = (parts: string[]) =>
    parts.flatMap((p) => {
      if (!p.includes(".")) return [p];
      // An embedded IPv4 tail (::1.2.3.4) is two groups.
      const [a, b, c, d] = p.split(".").map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const left = expand(split(head));
  const right = expand(split(tail));
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16).toString(16));
}

/**
 * Counts open connections per peer (peerKey) against a cap, so that one address cannot take
 * every connection slot of the listener. O(1) per connection.
 */
export class PeerConnections {
  readonly #open = new Map<string, number>();

  constructor(readonly maxPerPeer: number) {}

  /** Counts a new connection in, or returns false (and counts nothing) when its peer is at the cap. */
  admit(key: string): boolean {
    const n = this.#open.get(key) ?? 0;
    if (n >= this.maxPerPeer) return false;
    this.#open.set(key, n + 1);
    return true;
  }

  /** A counted connection closed. */
  release(key: string): void {
    const n = (this.#open.get(key) ?? 1) - 1;
    if (n <= 0) this.#open.delete(key);
    else this.#open.set(key, n);
  }

  /** Open connections of a peer. */
  count(key: string): number {
    return this.#open.get(key) ?? 0;
  }
}
