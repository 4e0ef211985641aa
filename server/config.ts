import { Command } from "commander";
import { z } from "zod";
import { integerSetting, logLevelSetting, readSettings, Refusal, settingsSchema, textSetting, type Setting, type Settings } from "../contract/settings.js";
import { databaseUrlProblem, redactDatabaseUrl } from "./db/pg/database-url.js";
import { LISTENER_DEFAULTS } from "./http/listener.js";

/** A setting whose --help ends with the default its rule gives, as `show` writes it. */
function showingDefault<S extends Setting>(s: S, show: (value: unknown) => string = String): S {
  return { ...s, help: `${s.help} (default: ${show(s.rule.parse(undefined))})` };
}
const inMs = (ms: unknown) => `${ms} ms`;

const databaseUrl = textSetting((url) => {
  const problem = databaseUrlProblem(url);
  return problem ? new Refusal(`${problem} (got ${redactDatabaseUrl(url)})`) : url;
});

/**
 * Every setting of the studio server: its flag (the key in kebab case), variable, help and rule, in --help's order.
 * databaseUrl unset: the embedded SQLite file under dataDir; set, dataDir holds only local scratch (uploads in flight).
 * maxConnectionsPerAddress stays below the listener's 10,000 connections in all.
 */
export const SERVER_SETTINGS = {
  host: showingDefault({ arg: "<host>", env: "STUDIO_HOST", rule: z.string().min(1).default("127.0.0.1"), help: "address to listen on" }),
  port: showingDefault({ arg: "<port>", env: "STUDIO_PORT", rule: integerSetting(0, 65535).default(8080), help: "port to listen on (0: any free port)" }),
  dataDir: showingDefault({ arg: "<dir>", env: "STUDIO_DATA_DIR", rule: z.string().min(1).default("./data"), help: "where the SQLite database and outputs live (with --database-url: local scratch only)" }),
  databaseUrl: { arg: "<url>", env: "STUDIO_DATABASE_URL", secret: true, rule: databaseUrl.optional(), help: "PostgreSQL shared by several replicas, postgres://user:password@host:5432/db; prefer the variable, flags show in ps (default: SQLite under --data-dir)" },
  logLevel: showingDefault({ arg: "<level>", env: "STUDIO_LOG_LEVEL", rule: logLevelSetting, help: "fatal, error, warn, info, debug, trace or silent" }),
  leaseTtlMs: showingDefault({ arg: "<ms>", env: "STUDIO_LEASE_TTL_MS", rule: integerSetting(500, 3_600_000).default(30_000), help: "how long a lease lasts without a heartbeat, 500..3600000" }, inMs),
  heartbeatIntervalMs: showingDefault({ arg: "<ms>", env: "STUDIO_HEARTBEAT_INTERVAL_MS", rule: integerSetting(100, 600_000).default(10_000), help: "how often workers heartbeat, at most half the lease TTL" }, inMs),
  maxOutputBytes: showingDefault({ arg: "<n>", env: "STUDIO_MAX_OUTPUT_BYTES", rule: integerSetting(1, 16 * 1024 ** 3).default(512 * 1024 ** 2), help: "largest output a job may upload, in bytes" }, (n) => `${n} = ${Number(n) / 1024 ** 2} MiB`),
  defaultMaxAttempts: showingDefault({ arg: "<n>", env: "STUDIO_DEFAULT_MAX_ATTEMPTS", rule: integerSetting(1, 100).default(3), help: "attempts a job gets unless it asks otherwise, 1..100" }),
  verifyUrlTimeoutMs: showingDefault({ arg: "<ms>", env: "STUDIO_VERIFY_URL_TIMEOUT_MS", rule: integerSetting(50, 300_000).default(10_000), help: "VerifyModel's deadline per file URL" }, inMs),
  tlsCert: { arg: "<file>", env: "STUDIO_TLS_CERT", rule: z.string().optional(), help: "PEM certificate: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) (default: cleartext)" },
  tlsKey: { arg: "<file>", env: "STUDIO_TLS_KEY", rule: z.string().optional(), help: "PEM private key for --tls-cert" },
  adminToken: { arg: "<token>", env: "STUDIO_ADMIN_TOKEN", secret: true, rule: z.string().min(32).optional(), help: "an admin bearer token to accept (at least 32 characters); visible in ps, prefer STUDIO_ADMIN_TOKEN (default: none)" },
  maxWatchStreamsPerToken: showingDefault({ arg: "<n>", env: "STUDIO_MAX_WATCH_STREAMS_PER_TOKEN", rule: integerSetting(1, 1000).default(16), help: "open WatchJobs streams one token may hold" }),
  headersTimeoutMs: showingDefault({ arg: "<ms>", env: "STUDIO_HEADERS_TIMEOUT_MS", rule: integerSetting(100, 600_000).default(LISTENER_DEFAULTS.headersTimeoutMs), help: "how long a new connection may take to send a complete request head (HTTP/1.1) or first stream (HTTP/2), TLS handshake included" }, inMs),
  idleTimeoutMs: showingDefault({ arg: "<ms>", env: "STUDIO_IDLE_TIMEOUT_MS", rule: integerSetting(100, 3_600_000).default(LISTENER_DEFAULTS.idleTimeoutMs), help: "how long a connection may stay open with no request or stream in progress" }, inMs),
  maxConnectionsPerAddress: showingDefault({ arg: "<n>", env: "STUDIO_MAX_CONNECTIONS_PER_ADDRESS", rule: integerSetting(1, LISTENER_DEFAULTS.maxConnections).default(LISTENER_DEFAULTS.maxConnectionsPerAddress), help: "open connections one client address (IPv4, or IPv6 /64) may hold; raise it behind a reverse proxy or a NAT with many workers" }),
  openaiWaitMs: showingDefault({ arg: "<ms>", env: "STUDIO_OPENAI_WAIT_MS", rule: integerSetting(100, 3_600_000).default(60_000), help: "how long an OpenAI API request waits for a worker to take its job before the job is cancelled and the answer is 503" }, inMs),
} satisfies Settings;

/** The studio's configuration, validated at start-up (and by startStudio for tests that skip the flags). */
export const ServerConfigSchema = settingsSchema(SERVER_SETTINGS).refine((c) => c.heartbeatIntervalMs <= c.leaseTtlMs / 2, {
  // A worker must be able to miss one heartbeat without its leases expiring. A rule across two
  // settings belongs to neither (no path): its message names both flags itself.
  error: (issue) => {
    const c = issue.input as { heartbeatIntervalMs: number; leaseTtlMs: number };
    return `--heartbeat-interval-ms (${c.heartbeatIntervalMs}) must be at most half of --lease-ttl-ms (${c.leaseTtlMs}), so that one late heartbeat does not expire a lease`;
  },
});
export type ServerConfig = z.output<typeof ServerConfigSchema>;
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** `studio-server [flags]`: the studio's settings from argv and the environment (flags win); throws ConfigError. */
export function parseServerArgs(argv: string[], { env = process.env }: { env?: Record<string, string | undefined> } = {}): ServerConfig {
  const program = new Command("studio-server")
    .description("Studio: the registry and job queue that GPU workers take work from.")
    .showHelpAfterError();
  return readSettings(program, SERVER_SETTINGS, ServerConfigSchema, { argv, env });
}
