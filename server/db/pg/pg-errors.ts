/** The driver's error under drizzle's DrizzleQueryError (and any other wrapper that keeps a cause). */
function* causes(err: unknown): Generator<unknown> {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) yield e;
}

function codeOf(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const o = e as { code?: unknown; errno?: unknown };
  return typeof o.errno === "string" && /^[0-9A-Z]{5}$/.test(o.errno) ? o.errno : typeof o.code === "string" ? o.code : undefined;
}

/** The SQLSTATE of a PostgreSQL error anywhere in the cause chain (for example 23505), or undefined. */
export function sqlState(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const code = codeOf(e);
    if (code && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Driver and socket codes that mean the database cannot be reached right now. */
const UNREACHABLE =
  /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|CONNECTION_\w+|CONNECT_TIMEOUT|ERR_POSTGRES_(CONNECTION_\w+|IDLE_TIMEOUT|LIFETIME_TIMEOUT|QUERY_CANCELLED))$/;

/**
 * Whether an error means the database is unavailable (unreachable, restarting, shutting
 * down, connection lost) rather than that the request was wrong: the RPC edge answers
 * UNAVAILABLE so that clients retry, instead of INTERNAL.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of causes(err)) {
    const code = codeOf(e);
    if (!code) continue;
    // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now; 53300: too many connections.
    if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === "53300") return true;
    if (UNREACHABLE.test(code)) return true;
  }
  return false;
}
