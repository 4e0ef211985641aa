#!/usr/bin/env bun
import { Command, Option } from "commander";
import { parseServerConfig, SERVER_DEFAULTS, SERVER_ENV, ServerConfigError, type ServerConfig } from "./config.js";
import { startStudio, type Studio } from "./app.js";
import { checkPortFree, describeListenError } from "./http/port-check.js";
import { StorageOpenError } from "./storage/storage.js";

const MIB = 1024 ** 2;

/** A flag's help text with its default, as the studio would use it. */
function help(text: string, key: keyof ServerConfig, show?: string): string {
  return `${text} (default: ${show ?? String(SERVER_DEFAULTS[key])})`;
}

/** `bun run server`: parses flags and env, starts the studio, and shuts down gracefully on SIGINT/SIGTERM. */
async function main(argv: string[]) {
  const program = new Command("studio-server")
    .description("Studio: the registry and job queue that GPU workers take work from.")
    .addOption(new Option("--host <host>", help("address to listen on", "host")).env(SERVER_ENV.host))
    .addOption(new Option("--port <port>", help("port to listen on (0: any free port)", "port")).env(SERVER_ENV.port))
    .addOption(new Option("--data-dir <dir>", help("where the SQLite database and outputs live (with --database-url: local scratch only)", "dataDir")).env(SERVER_ENV.dataDir))
    .addOption(new Option("--database-url <url>", "PostgreSQL shared by several replicas, postgres://user:password@host:5432/db; prefer the variable, flags show in ps (default: SQLite under --data-dir)").env(SERVER_ENV.databaseUrl))
    .addOption(new Option("--log-level <level>", help("fatal, error, warn, info, debug, trace or silent", "logLevel")).env(SERVER_ENV.logLevel))
    .addOption(new Option("--lease-ttl-ms <ms>", help("how long a lease lasts without a heartbeat, 500..3600000", "leaseTtlMs", `${SERVER_DEFAULTS.leaseTtlMs} ms`)).env(SERVER_ENV.leaseTtlMs))
    .addOption(new Option("--heartbeat-interval-ms <ms>", help("how often workers heartbeat, at most half the lease TTL", "heartbeatIntervalMs", `${SERVER_DEFAULTS.heartbeatIntervalMs} ms`)).env(SERVER_ENV.heartbeatIntervalMs))
    .addOption(new Option("--max-output-bytes <n>", help("largest output a job may upload, in bytes", "maxOutputBytes", `${SERVER_DEFAULTS.maxOutputBytes} = ${SERVER_DEFAULTS.maxOutputBytes / MIB} MiB`)).env(SERVER_ENV.maxOutputBytes))
    .addOption(new Option("--default-max-attempts <n>", help("attempts a job gets unless it asks otherwise, 1..100", "defaultMaxAttempts")).env(SERVER_ENV.defaultMaxAttempts))
    .addOption(new Option("--verify-url-timeout-ms <ms>", help("VerifyModel's deadline per file URL", "verifyUrlTimeoutMs", `${SERVER_DEFAULTS.verifyUrlTimeoutMs} ms`)).env(SERVER_ENV.verifyUrlTimeoutMs))
    .addOption(new Option("--tls-cert <file>", "PEM certificate: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) (default: cleartext)").env(SERVER_ENV.tlsCert))
    .addOption(new Option("--tls-key <file>", "PEM private key for --tls-cert").env(SERVER_ENV.tlsKey))
    .addOption(new Option("--admin-token <token>", "an admin bearer token to accept (at least 32 characters); visible in ps, prefer STUDIO_ADMIN_TOKEN (default: none)").env(SERVER_ENV.adminToken))
    .addOption(new Option("--max-watch-streams-per-token <n>", help("open WatchJobs streams one token may hold", "maxWatchStreamsPerToken")).env(SERVER_ENV.maxWatchStreamsPerToken))
    .addOption(new Option("--headers-timeout-ms <ms>", help("how long a new connection may take to send a complete request head (HTTP/1.1) or first stream (HTTP/2), TLS handshake included", "headersTimeoutMs", `${SERVER_DEFAULTS.headersTimeoutMs} ms`)).env(SERVER_ENV.headersTimeoutMs))
    .addOption(new Option("--idle-timeout-ms <ms>", help("how long a connection may stay open with no request or stream in progress", "idleTimeoutMs", `${SERVER_DEFAULTS.idleTimeoutMs} ms`)).env(SERVER_ENV.idleTimeoutMs))
    .addOption(new Option("--max-connections-per-address <n>", help("open connections one client address (IPv4, or IPv6 /64) may hold; raise it behind a reverse proxy or a NAT with many workers", "maxConnectionsPerAddress")).env(SERVER_ENV.maxConnectionsPerAddress))
    .addOption(new Option("--openai-wait-ms <ms>", help("how long an OpenAI API request waits for a worker to take its job before the job is cancelled and the answer is 503", "openaiWaitMs", `${SERVER_DEFAULTS.openaiWaitMs} ms`)).env(SERVER_ENV.openaiWaitMs))
    .showHelpAfterError();
  program.parse(argv);
  const opts = program.opts<Record<string, string | undefined>>();
  const input = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
  let config: ServerConfig;
  try {
    config = parseServerConfig(input);
  } catch (err) {
    if (!(err instanceof ServerConfigError)) throw err;
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
