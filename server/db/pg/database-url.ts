/** The schemes --database-url accepts. */
const SCHEMES = new Set(["postgres:", "postgresql:"]);

/** Where the URL came from, for error messages: the flag and its variable. */
export const DATABASE_URL_SOURCE = "--database-url (STUDIO_DATABASE_URL)";

/** The URL with its password replaced by ***, for messages and logs; text that is not a URL is not echoed. */
export function redactDatabaseUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password !== "") url.password = "***";
    return url.toString();
  } catch {
    return "(not a URL)";
  }
}

/** Why a database URL is refused, or undefined when it is a usable postgres:// or postgresql:// URL. */
export function databaseUrlProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be a URL such as postgres://user:password@host:5432/studio";
  }
  if (!SCHEMES.has(url.protocol))
    return `must use postgres:// or postgresql:// (got ${JSON.stringify(url.protocol.replace(/:$/, ""))}); only PostgreSQL is supported`;
  if (url.hostname === "") return "must name a host, as in postgres://user:password@host:5432/studio";
  if (url.pathname.replace(/^\//, "") === "") return "must name a database, as in postgres://user:password@host:5432/studio";
  return undefined;
}
