import type fs from "node:fs";

/** The structured logger the manager reports to (pino's info/warn shape). */
export interface DownloadLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** The slice of a file handle the manager writes through; tests inject one that fails with ENOSPC. */
export interface WritableFile {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  truncate(length: number): Promise<void>;
  datasync(): Promise<void>;
  stat(): Promise<fs.Stats>;
  close(): Promise<void>;
}

/**
 * Opens a partial file for reading and writing ("r+" or "w+"), or an existing one with O_DIRECT
 * ("direct": aligned block writes and read-backs that bypass the page cache; throws where that is not supported).
 */
export type OpenFile = (path: string, flags: "r+" | "w+" | "direct") => Promise<WritableFile>;

export interface DownloadManagerOptions {
  /** Shared by worker processes on one host; layout: blobs/, partial/, locks/, pins/. */
  cacheDir: string;
  /** LRU budget for complete files; undefined = unlimited. */
  cacheMaxBytes?: number;
  /** Bearer token sent to Hugging Face hosts only, and never after a redirect changes the origin. */
  hfToken?: string;
  /** Which hosts get hfToken; defaults to huggingface.co and *.huggingface.co (tests widen it to loopback). */
  isTokenHost?: (hostname: string) => boolean;
  /** No body bytes for this long aborts the attempt as a stall (retried). Default 60 s. */
  stallTimeoutMs?: number;
  /** Retries per file after network errors, 5xx and stalls; an attempt that made progress resets the count. Default 5. */
  maxRetries?: number;
  /** First backoff; doubles per retry with full jitter, capped at 30 s. Default 500 ms. */
  retryBaseDelayMs?: number;
  /** Files at least this large are fetched as parallel ranges when the server accepts ranges. Default 64 MiB. */
  partThresholdBytes?: number;
  /** Number of parallel ranges for large files. Default 4. */
  parts?: number;
  /** Minimum time between progress events. Default 250 ms. */
  progressIntervalMs?: number;
  /** A lock whose holder's pid is gone, or whose heartbeat is older than this, is taken over. Default 30 s. */
  lockStaleMs?: number;
  /** How many redirects one request may follow. Default 10. */
  maxRedirects?: number;
  /**
   * Slack over approxBytes × 1.5 that a body without Content-Length may reach before it is cut off
   * as too large. Default 64 MiB. See lengthlessCap in length-cap.ts.
   */
  lengthlessSlackBytes?: number;
  logger?: DownloadLogger;
  /** Write layer; defaults to node:fs/promises open. */
  openFile?: OpenFile;
  /**
   * Write aligned blocks with O_DIRECT where the filesystem takes it (default true): far less CPU per GiB
   * than the page cache, and no dirty gigabytes for the final fsync; falls back on its own where refused.
   */
  directIo?: boolean;
  /** Free bytes available to the cache dir; defaults to fs.statfs (bavail * bsize). */
  freeBytes?: (dir: string) => Promise<number>;
}

/** Options with every default filled in. */
export type ResolvedOptions = Required<Omit<DownloadManagerOptions, "cacheMaxBytes" | "hfToken">> &
  Pick<DownloadManagerOptions, "cacheMaxBytes" | "hfToken">;

/** Hugging Face hosts: huggingface.co and its subdomains (the CDN hosts are subdomains too). */
export function isHuggingFaceHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === "huggingface.co" || h.endsWith(".huggingface.co");
}

const noopLogger: DownloadLogger = { info() {}, warn() {} };

/** Fills defaults and rejects settings that cannot work. */
export function resolveOptions(
  options: DownloadManagerOptions,
  defaults: { openFile: OpenFile; freeBytes: (dir: string) => Promise<number> },
): ResolvedOptions {
  const {
    cacheDir,
    cacheMaxBytes,
    hfToken,
    isTokenHost = isHuggingFaceHost,
    stallTimeoutMs = 60_000,
    maxRetries = 5,
    retryBaseDelayMs = 500,
    partThresholdBytes = 64 * 1024 * 1024,
    parts = 4,
    progressIntervalMs = 250,
    lockStaleMs = 30_000,
    maxRedirects = 10,
    lengthlessSlackBytes = 64 * 1024 * 1024,
    logger = noopLogger,
    openFile = defaults.openFile,
    directIo = true,
    freeBytes = defaults.freeBytes,
  } = options;
  if (!cacheDir) throw new RangeError("cacheDir must be set");
  const positive = { stallTimeoutMs, partThresholdBytes, parts, lockStaleMs };
  for (const [name, v] of Object.entries(positive))
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number, got ${v}`);
  const nonNegative = { maxRetries, retryBaseDelayMs, progressIntervalMs, maxRedirects, lengthlessSlackBytes };
  for (const [name, v] of Object.entries(nonNegative))
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be zero or more, got ${v}`);
  if (cacheMaxBytes !== undefined && !(cacheMaxBytes >= 0))
    throw new RangeError(`cacheMaxBytes must be zero or more, got ${cacheMaxBytes}`);
  return {
    cacheDir,
    cacheMaxBytes,
    hfToken: hfToken || undefined,
    isTokenHost,
    stallTimeoutMs,
    maxRetries,
    retryBaseDelayMs,
    partThresholdBytes,
    parts: Math.floor(parts),
    progressIntervalMs,
    lockStaleMs,
    maxRedirects,
    lengthlessSlackBytes,
    logger,
    openFile,
    directIo,
    freeBytes,
  };
}
