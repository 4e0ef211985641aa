import type { App } from "./app.js";
import { describeError, isUnauthenticated } from "./errors.js";

/** Runs an RPC for a view: errors go to the status line (or to sign-in), never swallowed. */
export async function guarded<T>(app: App, what: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (isUnauthenticated(err)) app.needLogin(err);
    else app.announce(`${what} failed: ${describeError(err)}`, "error");
    return undefined;
  }
}
