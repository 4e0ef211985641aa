/** True for the schemes a worker or the studio fetches, and that studio URLs use: http: and https:. */
export function isHttpUrl(url: URL): boolean {
  return url.protocol === "http:" || url.protocol === "https:";
}

/**
 * Why a URL is not an absolute http(s) URL without credentials, or undefined when it is: the rule
 * for model file URLs, a worker's --server and the CLI's --server (a token goes in its own header,
 * never in a URL that logs and `ps` show).
 */
export function httpUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be an absolute http: or https: URL";
  }
  if (!isHttpUrl(parsed)) return `must use http: or https:, not ${parsed.protocol}`;
  if (parsed.username || parsed.password) return "must not carry credentials";
  return undefined;
}

/**
 * A URL as an error message may quote it: its user name and password replaced by *** (a URL refused
 * for carrying credentials must not print them into logs and terminals); any other text as it is.
 */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = "***";
    parsed.password = "";
    return parsed.href;
  } catch {
    return url;
  }
}

const IPV4_LOOPBACK = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpv4Loopback(host: string): boolean {
  const m = IPV4_LOOPBACK.exec(host);
  return m !== null && m.slice(1).every((octet) => Number(octet) <= 255);
}

/**
 * Whether a host (a name or an address; IPv6 with or without brackets) is this machine's loopback:
 * `localhost`, an address in 127.0.0.0/8, or ::1 (also in full, or 127/8 mapped into IPv6). Only
 * these: a DNS name that resolves to 127.0.0.1 is not one, which is what DNS rebinding relies on.
 * The one rule for the studio's --host, the Host header of an open studio, and the worker sending
 * its Hugging Face token over plain http.
 */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "localhost" || h === "localhost.") return true;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  return isIpv4Loopback(h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h);
}
