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
