import { isHttpUrl } from "../../contract/http-url.js";
import { guardedFetch } from "./guarded-fetch.js";

/** What one URL check found. */
export interface UrlCheck {
  reachable: boolean;
  /** The last HTTP status seen; 0 when no response came. */
  httpStatus: number;
  /** The URL after redirects (the last one asked). */
  finalUrl: string;
  /** Content-Length, or the total of Content-Range for the ranged fallback, when the server said. */
  sizeBytes?: bigint;
  /** Why the URL is unreachable; empty when it is. */
  error: string;
}

export interface UrlCheckOptions {
  /** The deadline for the whole check of one URL, redirects included. */
  timeoutMs: number;
  maxRedirects?: number;
  /** guardedFetch unless a test passes its own. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

/** The most redirects a check follows before giving up. */
export const DEFAULT_MAX_REDIRECTS = 10;

const REFUSED_HEAD = new Set([403, 405, 501]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);

/**
 * Checks that a worker could download url, without downloading it: a HEAD, or a
 * one-byte ranged GET where HEAD is refused (403/405/501). Redirects are followed
 * by hand so that each hop is seen: at most maxRedirects, and never to a scheme
 * other than http: or https:. 200 (or 206 for the ranged GET) at the end is reachable.
 * Each hop goes through guardedFetch, which refuses link-local and unspecified addresses
 * (the cloud metadata service among them) where it connects.
 */
export async function checkUrl(
  url: string,
  { timeoutMs, maxRedirects = DEFAULT_MAX_REDIRECTS, fetch: fetchFn = guardedFetch }: UrlCheckOptions,
): Promise<UrlCheck> {
  const signal = AbortSignal.timeout(timeoutMs);
  let current = url;
  let method: "HEAD" | "GET" = "HEAD";
  let status = 0;
  let hops = 0;
  const fail = (error: string): UrlCheck => ({ reachable: false, httpStatus: status, finalUrl: current, error });
  try {
    for (;;) {
      const res = await fetchFn(current, {
        method,
        redirect: "manual",
        signal,
        headers: method === "GET" ? { range: "bytes=0-0", "accept-encoding": "identity" } : {},
      });
      status = res.status;
      const location = res.headers.get("location");
      const size = method === "HEAD" ? contentLength(res) : rangedSize(res);
      await res.body?.cancel().catch(() => {});
      if (REDIRECT.has(status)) {
        if (!location) return fail(`HTTP ${status} without a Location header`);
        let next: URL;
        try {
          next = new URL(location, current);
        } catch {
          return fail(`HTTP ${status} to an unparsable Location ${JSON.stringify(location.slice(0, 200))}`);
        }
        if (!isHttpUrl(next))
          return fail(`refused to follow a redirect to ${next.protocol} (only http: and https: are fetched)`);
        if (hops >= maxRedirects) return fail(`more than ${maxRedirects} redirects`);
        hops += 1;
        current = next.href;
        continue;
      }
      if (method === "HEAD" && REFUSED_HEAD.has(status)) {
        method = "GET";
        continue;
      }
      const ok = status === 200 || (method === "GET" && status === 206);
      return { reachable: ok, httpStatus: status, finalUrl: current, sizeBytes: size, error: ok ? "" : `HTTP ${status}` };
    }
  } catch (err) {
    if (signal.aborted) return fail(`no answer within ${timeoutMs} ms`);
    return fail(`request failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function contentLength(res: Response): bigint | undefined {
  const v = res.headers.get("content-length");
  return v !== null && /^\d{1,19}$/.test(v.trim()) ? BigInt(v.trim()) : undefined;
}

/** A 206's Content-Range total ("bytes 0-0/12345"), or a 200's Content-Length when the server ignored the range. */
function rangedSize(res: Response): bigint | undefined {
  if (res.status === 206) {
    const m = /^bytes\s+\d+-\d+\/(\d{1,19})$/.exec(res.headers.get("content-range")?.trim() ?? "");
    return m ? BigInt(m[1]!) : undefined;
  }
  return res.status === 200 ? contentLength(res) : undefined;
}
