/**
 * Why a download failed. The kind decides what the caller does next: network,
 * stall and 5xx answers are retried inside the manager with backoff, everything
 * else is permanent and reported at once.
 */
export type DownloadErrorKind = "network" | "stall" | "http" | "integrity" | "disk" | "cancelled" | "invalid" | "too-large";

/**
 * A classified download failure; the message names the URL and the file name
 * (and both digests on a mismatch). `retryable` says whether the cause is
 * transient (network, stall, 408/429/5xx): the manager has already retried
 * those with backoff, so a retryable error means "try the job again later",
 * while a permanent one (401/403/404, integrity, disk, invalid, too-large: a
 * body without Content-Length that ran past its cap) will fail the
 * same way again.
 */
export class DownloadError extends Error {
  override readonly name = "DownloadError";
  readonly kind: DownloadErrorKind;
  readonly retryable: boolean;
  readonly url: string;
  readonly filename: string;
  readonly status?: number;

  constructor(init: {
    kind: DownloadErrorKind;
    retryable: boolean;
    url: string;
    filename: string;
    message: string;
    status?: number;
    cause?: unknown;
  }) {
    super(`${init.message} (file ${JSON.stringify(init.filename)} from ${init.url})`, { cause: init.cause });
    this.kind = init.kind;
    this.retryable = init.retryable;
    this.url = init.url;
    this.filename = init.filename;
    if (init.status !== undefined) this.status = init.status;
  }
}

/** What a failure is about, without the file it belongs to (the downloader adds url and filename). */
export interface FailureInit {
  kind: DownloadErrorKind;
  retryable: boolean;
  message: string;
  status?: number;
  cause?: unknown;
}

/** A failure raised below the file level, turned into a DownloadError by the caller that knows the file. */
export class TransferFailure extends Error {
  readonly init: FailureInit;
  constructor(init: FailureInit) {
    super(init.message, { cause: init.cause });
    this.init = init;
  }
}

/** Retry policy for an HTTP status: 408, 429 and 5xx are worth another try; 401, 403, 404 and the rest are not. */
export function httpFailure(status: number, statusText: string): FailureInit {
  const retryable = status === 408 || status === 429 || status >= 500;
  return { kind: "http", retryable, status, message: `HTTP ${status}${statusText ? ` ${statusText}` : ""}` };
}

/** True for errno codes that mean the disk (or quota) is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Wraps a filesystem error as a permanent disk failure, or returns undefined when it is not one. */
export function diskFailure(err: unknown, what: string): FailureInit | undefined {
  if (!isDiskFull(err)) return undefined;
  return { kind: "disk", retryable: false, message: `disk full while ${what}`, cause: err };
}
