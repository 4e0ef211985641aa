import { z } from "zod";
import { describeValue } from "../contract/issues.js";
import { databaseUrlProblem, redactDatabaseUrl } from "./db/pg/database-url.js";
import { LISTENER_DEFAULTS } from "./http/listener.js";

/** Every setting of the studio server, validated at start-up; flags win over env, env over defaults. */
export const ServerConfigSchema = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  dataDir: z.string().min(1).default("./data"),
  /**
   * PostgreSQL shared by every replica (postgres:// or postgresql://); unset: the embedded
   * SQLite file under dataDir. With it, dataDir holds only local scratch (uploads in flight).
   */
  databaseUrl: z
    .string()
    .optional()
    .superRefine((url, ctx) => {
      const problem = url === undefined ? undefined : databaseUrlProblem(url);
      if (problem) ctx.addIssue({ code: "custom", message: `--database-url (STUDIO_DATABASE_URL): ${problem} (got ${redactDatabaseUrl(url!)})` });
    }),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** How long a lease lasts without a heartbeat. */
  leaseTtlMs: z.coerce.number().int().min(500).max(3_600_000).default(30_000),
  /** How often workers are asked to heartbeat; well under the lease TTL. */
  heartbeatIntervalMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** The largest output one job may upload, per output. */
  maxOutputBytes: z.coerce.number().int().min(1).max(16 * 1024 ** 3).default(512 * 1024 ** 2),
  /** Attempts a job gets unless its request says otherwise. */
  defaultMaxAttempts: z.coerce.number().int().min(1).max(100).default(3),
  /** VerifyModel's deadline per file URL, redirects included. */
  verifyUrlTimeoutMs: z.coerce.number().int().min(50).max(300_000).default(10_000),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  /** An admin bearer token to accept (and store hashed) at start. */
  adminToken: z.string().min(32).optional(),
  /** Open WatchJobs streams one token may hold at once. */
  maxWatchStreamsPerToken: z.coerce.number().int().min(1).max(1000).default(16),
  /** How long a new connection may take (TLS handshake included) to send a complete request head or first HTTP/2 stream. */
  headersTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(LISTENER_DEFAULTS.headersTimeoutMs),
  /** How long a connection may stay open with no request or stream in progress. */
  idleTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(LISTENER_DEFAULTS.idleTimeoutMs),
  /** Open connections one peer address (IPv4, or IPv6 /64) may hold; below the listener's 10,000 in all. */
  maxConnectionsPerAddress: z.coerce.number().int().min(1).max(LISTENER_DEFAULTS.maxConnections).default(LISTENER_DEFAULTS.maxConnectionsPerAddress),
  /** How long an OpenAI API request waits for a worker to take its job before it is cancelled and answered 503. */
  openaiWaitMs: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
}).refine((c) => c.heartbeatIntervalMs <= c.leaseTtlMs / 2, {
  // A worker must be able to miss one heartbeat without its leases expiring.
  path: ["heartbeatIntervalMs"],
  error: (issue) => {
    const c = issue.input as { heartbeatIntervalMs: number; leaseTtlMs: number };
    return `--heartbeat-interval-ms (${c.heartbeatIntervalMs}) must be at most half of --lease-ttl-ms (${c.leaseTtlMs}), so that one late heartbeat does not expire a lease`;
  },
});
export type ServerConfig = z.output<typeof ServerConfigSchema>;
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** Which environment variable feeds which setting. */
export const SERVER_ENV: Record<keyof ServerConfig, string> = {
  host: "STUDIO_HOST",
  port: "STUDIO_PORT",
  dataDir: "STUDIO_DATA_DIR",
  databaseUrl: "STUDIO_DATABASE_URL",
  logLevel: "STUDIO_LOG_LEVEL",
  leaseTtlMs: "STUDIO_LEASE_TTL_MS",
  heartbeatIntervalMs: "STUDIO_HEARTBEAT_INTERVAL_MS",
  maxOutputBytes: "STUDIO_MAX_OUTPUT_BYTES",
  defaultMaxAttempts: "STUDIO_DEFAULT_MAX_ATTEMPTS",
  verifyUrlTimeoutMs: "STUDIO_VERIFY_URL_TIMEOUT_MS",
  tlsCert: "STUDIO_TLS_CERT",
  tlsKey: "STUDIO_TLS_KEY",
  adminToken: "STUDIO_ADMIN_TOKEN",
  maxWatchStreamsPerToken: "STUDIO_MAX_WATCH_STREAMS_PER_TOKEN",
  headersTimeoutMs: "STUDIO_HEADERS_TIMEOUT_MS",
  idleTimeoutMs: "STUDIO_IDLE_TIMEOUT_MS",
  maxConnectionsPerAddress: "STUDIO_MAX_CONNECTIONS_PER_ADDRESS",
  openaiWaitMs: "STUDIO_OPENAI_WAIT_MS",
};

/** The defaults, for --help. */
export const SERVER_DEFAULTS: ServerConfig = ServerConfigSchema.parse({});

/** A setting's command-line flag: leaseTtlMs is --lease-ttl-ms. */
export function flagFor(key: keyof ServerConfig): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Settings whose value must never be echoed in an error message. */
const SECRET_SETTINGS = new Set<string>(["adminToken", "databaseUrl"]);

/** Start-up configuration that breaks a rule; the message names each flag and the value as given. */
export class ServerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServerConfigError";
  }
}

/**
 * Validates flags and env as given (strings from the command line or numbers from tests).
 * Errors quote the raw input ("abc"), not what coercion made of it (NaN), and never a secret.
 */
export function parseServerConfig(input: Record<string, unknown>): ServerConfig {
  const parsed = ServerConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const messages = parsed.error.issues.map((issue) => {
    const key = issue.path[0];
    if (issue.code === "custom" || typeof key !== "string" || !(key in SERVER_ENV)) return issue.message;
    const setting = key as keyof ServerConfig;
    const raw = input[setting];
    const rule = issue.code === "invalid_type" && issue.expected === "number" ? "must be a number" : issue.message;
    const got = raw === undefined || SECRET_SETTINGS.has(setting) ? "" : ` (got ${describeValue(raw)})`;
    return `${flagFor(setting)} (${SERVER_ENV[setting]}): ${rule}${got}`;
  });
  throw new ServerConfigError(messages.join("; "));
}
