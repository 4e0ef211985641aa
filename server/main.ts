#!/usr/bin/env bun
import { ConfigError } from "../contract/settings.js";
import { parseServerArgs, type ServerConfig } from "./config.js";
import { startStudio, type Studio } from "./app.js";
import { checkPortFree, describeListenError } from "./http/port-check.js";
import { StorageOpenError } from "./storage/storage.js";

/** `bun run server`: parses flags and env, starts the studio, and shuts down gracefully on SIGINT/SIGTERM. */
async function main(argv: string[]) {
  let config: ServerConfig;
  try {
    config = parseServerArgs(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`studio-server: bad configuration: ${err.message}`);
    process.exit(2);
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    console.error("studio-server: bad configuration: --tls-cert and --tls-key go together");
    process.exit(2);
  }
  // The port first: a busy one is one line naming it, before the data dir is opened or auth announced.
  let studio: Studio;
  try {
    await checkPortFree(config.host, config.port);
    studio = await startStudio(config);
  } catch (err) {
    const problem = err instanceof StorageOpenError ? err.message : describeListenError(err, config.host, config.port);
    if (problem === undefined) throw err;
    console.error(`studio-server: ${problem}`);
    process.exit(1);
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) process.exit(130);
    studio.ctx.logger.info({ signal }, "shutting down");
    studio.stop().then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

await main(process.argv);
