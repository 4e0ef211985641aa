import type { HttpRequest, HttpResponse } from "../http/http-routes.js";
import { isLoopbackHost } from "../../contract/http-url.js";
import type { AuthGate } from "./auth-gate.js";

/**
 * Whether a Host header (or HTTP/2 :authority) names this machine's loopback: `localhost`, an
 * address in 127.0.0.0/8 or `[::1]`, with or without a port. A DNS name an attacker controls never
 * passes, even when it resolves to 127.0.0.1: that is what DNS rebinding relies on.
 */
export function isLoopbackAuthority(authority: string): boolean {
  let host = authority.trim().toLowerCase();
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) return false;
    const rest = host.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return false;
    return isLoopbackHost(host.slice(1, end));
  }
  const colon = host.indexOf(":");
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return false;
    host = host.slice(0, colon);
  }
  return isLoopbackHost(host);
}

/**
 * The DNS-rebinding guard of an open studio. While it runs open (loopback, no tokens: every caller
 * is admin), a web page from anywhere could point its own DNS name at 127.0.0.1 and call the studio
 * from the victim's browser, which sends that name as Host. So while open, every request (RPC or
 * plain route) must name a loopback host; anything else is refused with 403 before it is read.
 * With tokens, any Host is accepted (reverse proxies use their own names), and this is one check
 * of a boolean per request.
 */
export function openModeHostCheck(gate: AuthGate): (req: HttpRequest, res: HttpResponse) => boolean {
  return function hostCheck(req, res) {
    if (!gate.open) return true;
    const given = req.headers[":authority"] ?? req.headers.host;
    const authority = Array.isArray(given) ? given[0] : given;
    // Browsers always send Host; a request without one did not come from a web page.
    if (authority === undefined || isLoopbackAuthority(authority)) return true;
    const message =
      `this studio runs open (no tokens) and answers only to a loopback host name (localhost, 127.0.0.1, [::1]), ` +
      `not ${JSON.stringify(authority.slice(0, 100))}: create an admin token to serve other names`;
    // A Connect error body: Connect clients read the message; gRPC clients map HTTP 403 to PERMISSION_DENIED.
    const body = JSON.stringify({ code: "permission_denied", message });
    (res as { writeHead(s: number, h: Record<string, string | number>): void }).writeHead(403, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
    return false;
  };
}
