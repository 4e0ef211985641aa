import * as dns from "node:dns";
import * as http from "node:http";
import * as https from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet("169.254.0.0", 16, "ipv4");
LINK_LOCAL.addSubnet("fe80::", 10, "ipv6");
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addSubnet("0.0.0.0", 8, "ipv4");
UNSPECIFIED.addAddress("::", "ipv6");

/**
 * Why the studio will not connect to an address on an admin's behalf, or undefined when it may:
 * link-local addresses (169.254.0.0/16 holds cloud metadata services; fe80::/10) and unspecified
 * ones (0.0.0.0/8 and ::, which reach this host), IPv4-mapped forms included. Private ranges and
 * loopback stay allowed: LAN mirrors and local file servers live there.
 */
export function addressProblem(address: string): string | undefined {
  const family = isIP(address) === 6 ? "ipv6" : isIP(address) === 4 ? "ipv4" : undefined;
  if (!family) return undefined;
  if (LINK_LOCAL.check(address, family)) return `${address} is link-local (169.254.0.0/16 or fe80::/10, where cloud metadata services answer)`;
  if (UNSPECIFIED.check(address, family)) return `${address} is unspecified (0.0.0.0/8 or ::, which reach this host)`;
  return undefined;
}

/** A refused address, as the check reports it. */
class RefusedAddress extends Error {}

type Resolve = (hostname: string, options: dns.LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void) => void;

/** A lookup for sockets that fails when any address of the name is one addressProblem refuses; the socket connects to what it returns. */
function guardedLookup(resolve: Resolve): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, list) => {
      if (err) return callback(err, "", 0);
      for (const a of list) {
        const problem = addressProblem(a.address);
        if (problem) return callback(new RefusedAddress(`${hostname} resolves to ${problem}`), "", 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/**
 * A fetch for VerifyModel's checks (no body is read, redirects are never followed: checkUrl follows
 * them itself, hop by hop, so every hop comes back here). The address is checked where the connection
 * is made (the lookup the socket uses, or the literal IP in the URL), so a name that resolves
 * differently a moment later cannot slip past the check. `resolve` is dns.lookup except in tests.
 */
export function createGuardedFetch({ resolve = dns.lookup as unknown as Resolve }: { resolve?: Resolve } = {}) {
  const lookup = guardedLookup(resolve);
  return async function guardedFetch(input: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(input);
    const literal = url.hostname.replace(/^\[(.*)\]$/, "$1");
    if (isIP(literal)) {
      const problem = addressProblem(literal);
      if (problem) throw new RefusedAddress(`refused to connect: ${problem}`);
    }
    const client = url.protocol === "https:" ? https : url.protocol === "http:" ? http : undefined;
    if (!client) throw new TypeError(`only http: and https: are fetched (got ${url.protocol})`);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    return new Promise<Response>((resolve, reject) => {
      const req = client.request(url, { method: init.method ?? "GET", headers, lookup, signal: init.signal ?? undefined }, (res) => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(", ") : v);
        res.destroy();
        resolve(new Response(null, { status: res.statusCode ?? 0, headers: out }));
      });
      req.on("error", reject);
      req.end();
    });
  };
}

/** The fetch VerifyModel uses. */
export const guardedFetch = createGuardedFetch();
