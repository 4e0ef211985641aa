import { isHttpUrl } from "../../contract/http-url.js";
import { TransferFailure, httpFailure } from "./errors.js";

/** How a request authenticates and how far it may be redirected. */
export interface FetchPolicy {
  hfToken: string | undefined;
  isTokenHost: (hostname: string) => boolean;
  maxRedirects: number;
}

/** The final answer of a request after redirects, with the URL that gave it. */
export interface FetchedResponse {
  response: Response;
  finalUrl: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * GETs a URL following redirects by hand, so each hop is checked: only http(s)
 * targets are followed, and the bearer token goes only to a token host over https on the
 * origin the request started at — once a redirect leaves that origin (Hugging
 * Face answers 302 to its CDN) the Authorization header is dropped for good.
 * Non-2xx answers become TransferFailures classified by status.
 */
export async function fetchFollowing(
  url: string,
  headers: Record<string, string>,
  policy: FetchPolicy,
  signal: AbortSignal,
  isOk: (status: number) => boolean = (status) => status >= 200 && status <= 299,
): Promise<FetchedResponse> {
  let current = parseHttpUrl(url);
  const origin = current.origin;
  let sameOrigin = true;
  for (let hop = 0; ; hop++) {
    const sent: Record<string, string> = { "accept-encoding": "identity", ...headers };
    if (policy.hfToken && sameOrigin && mayCarryToken(current, policy)) sent.authorization = `Bearer ${policy.hfToken}`;
    let response: Response;
    try {
      response = await fetch(current.href, { headers: sent, redirect: "manual", signal });
    } catch (err) {
      throw networkFailure(err, signal);
    }
    if (REDIRECTS.has(response.status)) {
      await response.body?.cancel().catch(() => {});
      const location = response.headers.get("location");
      if (!location)
        throw new TransferFailure({ kind: "http", retryable: false, status: response.status, message: `HTTP ${response.status} without a Location header` });
      if (hop >= policy.maxRedirects)
        throw new TransferFailure({ kind: "invalid", retryable: false, message: `more than ${policy.maxRedirects} redirects` });
      current = parseHttpUrl(new URL(location, current).href, "redirect to");
      if (current.origin !== origin) sameOrigin = false;
      continue;
    }
    if (!isOk(response.status)) {
      await response.body?.cancel().catch(() => {});
      throw new TransferFailure(httpFailure(response.status, response.statusText));
    }
    return { response, finalUrl: current.href };
  }
}

/**
 * Whether a request to `url` may carry the Hugging Face token: a token host, over https. Plain
 * http would hand the token to anyone on the path; only a loopback address (which never leaves the
 * machine, and which no default token host is) is exempt.
 */
export function mayCarryToken(url: URL, policy: Pick<FetchPolicy, "isTokenHost">): boolean {
  if (!policy.isTokenHost(url.hostname)) return false;
  return url.protocol === "https:" || isLoopbackHostname(url.hostname);
}

function isLoopbackHostname(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Classifies a thrown fetch or body-read error: a stall or cancel when our signal says so, else a network error. */
export function networkFailure(err: unknown, signal: AbortSignal): TransferFailure {
  if (err instanceof TransferFailure) return err;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof TransferFailure) return reason;
    return new TransferFailure({ kind: "cancelled", retryable: false, message: "download cancelled", cause: reason });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new TransferFailure({ kind: "network", retryable: true, message: `network error: ${detail}`, cause: err });
}

function parseHttpUrl(url: string, what = "URL"): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TransferFailure({ kind: "invalid", retryable: false, message: `${what} ${JSON.stringify(url)} is not an absolute URL` });
  }
  if (!isHttpUrl(parsed))
    throw new TransferFailure({ kind: "invalid", retryable: false, message: `${what} ${parsed.href} uses ${parsed.protocol}; only http: and https: are fetched` });
  return parsed;
}

/** The parsed Content-Range of a 206 answer ("bytes start-end/total"; total may be "*"). */
export interface ContentRange {
  start: number;
  end: number;
  total: number | undefined;
}

export function parseContentRange(value: string | null): ContentRange | undefined {
  const m = value && /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

/** The Content-Length header as a number, or undefined when absent or malformed. */
export function contentLength(response: Response): number | undefined {
  const v = response.headers.get("content-length");
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** A validator usable in If-Range: a strong ETag, else Last-Modified (weak ETags are not allowed there). */
export function ifRangeValidator(etag: string | undefined, lastModified: string | undefined): string | undefined {
  if (etag && !etag.startsWith("W/")) return etag;
  return lastModified;
}
