import type { ServerConfig } from "../config.js";
import type { Logger } from "../log.js";
import { isLoopbackHost } from "../../contract/http-url.js";
import type { TokenStore } from "./token-store.js";

/** How the studio came up: open (loopback, no tokens) or enforcing tokens. */
export type AuthMode = "open" | "enforced";

export interface BootstrapOptions {
  store: TokenStore;
  config: Pick<ServerConfig, "host" | "adminToken">;
  logger: Logger;
  /** Where a created admin secret is shown, once; stderr unless a test passes its own. */
  printSecret?: (text: string) => void;
}

/**
 * Decides at start whether the studio runs open, following the rule:
 * an --admin-token is stored (hashed) first; then, with an empty token table,
 * loopback runs open and says so loudly, and any other address gets a fresh
 * admin token printed once to stderr (never to the log) instead of running open.
 */
export async function bootstrapAuth({ store, config, logger, printSecret = writeStderr }: BootstrapOptions): Promise<AuthMode> {
  if (config.adminToken) {
    const token = await store.ensureSecret(config.adminToken, "admin (--admin-token)", "admin");
    if (token.revokedAt !== null) {
      logger.warn({ tokenId: token.id }, "the --admin-token given was revoked earlier and is refused; pass another");
    }
  }
  const tokens = await store.count();
  if (tokens > 0) {
    logger.info({ tokens }, "auth: bearer tokens enforced");
    return "enforced";
  }
  if (isLoopbackHost(config.host)) {
    logger.warn(
      { host: config.host },
      "auth is OFF: bound to loopback with no tokens, every local caller is admin. " +
        "Create a token (`studio tokens create`) to turn auth on, or bind another address to require one.",
    );
    return "open";
  }
  const { token, secret } = await store.create("bootstrap admin", "admin");
  printSecret(
    `\nstudio: bound to ${config.host} with no tokens, so an admin token was created (shown only this once):\n\n` +
      `    ${secret}\n\n` +
      "Keep it somewhere safe; use it as STUDIO_TOKEN for the CLI and create client/worker tokens with it.\n\n",
  );
  logger.warn({ tokenId: token.id, host: config.host }, "auth: created a bootstrap admin token (secret printed to stderr once)");
  return "enforced";
}

function writeStderr(text: string) {
  process.stderr.write(text);
}
