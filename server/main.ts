#!/usr/bin/env bun
import { Command, Option } from "commander";
import { SERVER_ENV, ServerConfigSchema, type ServerConfigInput } from "./config.js";
import { startStudio } from "./app.js";
import { formatIssues, issuesFromZod } from "../contract/issues.js";

/** `bun run server`: parses flags and env, starts the studio, and shuts down gracefully on SIGINT/SIGTERM. */
async function main(argv: string[]) {
  const program = new Command("studio-server")
    .description("Studio: the registry and job queue that GPU workers take work from.")
    .addOption(new Option("--host <host>", "address to listen on").env(SERVER_ENV.host))
    .addOption(new Option("--port <port>", "port to listen on (0: any free port)").env(SERVER_ENV.port))
    .addOption(new Option("--data-dir <dir>", "where the SQLite database and outputs live").env(SERVER_ENV.dataDir))
    .addOption(new Option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent").env(SERVER_ENV.logLevel))
    .addOption(new Option("--lease-ttl-ms <ms>", "how long a lease lasts without a heartbeat").env(SERVER_ENV.leaseTtlMs))
    .addOption(new Option("--heartbeat-interval-ms <ms>", "how often workers heartbeat").env(SERVER_ENV.heartbeatIntervalMs))
    .addOption(new Option("--max-output-bytes <n>", "largest output a job may upload").env(SERVER_ENV.maxOutputBytes))
    .addOption(new Option("--default-max-attempts <n>", "attempts a job gets by default").env(SERVER_ENV.defaultMaxAttempts))
    .addOption(new Option("--verify-url-timeout-ms <ms>", "VerifyModel's deadline per file URL").env(SERVER_ENV.verifyUrlTimeoutMs))
    .addOption(new Option("--tls-cert <file>", "PEM certificate: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN)").env(SERVER_ENV.tlsCert))
    .addOption(new Option("--tls-key <file>", "PEM private key for --tls-cert").env(SERVER_ENV.tlsKey))
    .addOption(new Option("--admin-token <token>", "an admin bearer token to accept (at least 32 characters); visible in ps, prefer STUDIO_ADMIN_TOKEN").env(SERVER_ENV.adminToken))
    .addOption(new Option("--max-watch-streams-per-token <n>", "open WatchJobs streams one token may hold").env(SERVER_ENV.maxWatchStreamsPerToken))
    .showHelpAfterError();
  program.parse(argv);
  const opts = program.opts<Record<string, string | undefined>>();
  const input = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as ServerConfigInput;
  const parsed = ServerConfigSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    console.error(`studio-server: bad configuration: ${formatIssues(issuesFromZod(parsed.error))}`);
    process.exit(2);
  }
  if ((parsed.data.tlsCert === undefined) !== (parsed.data.tlsKey === undefined)) {
    console.error("studio-server: bad configuration: --tls-cert and --tls-key go together");
    process.exit(2);
  }
  const studio = await startStudio(parsed.data);
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
