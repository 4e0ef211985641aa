import type { DownloadErrorKind } from "./errors.js";

/**
 * How far a body without Content-Length may run. Without a cap an endless (or
 * lying) chunked response would write until the disk is full, taking the studio
 * and other workers on the host down with it.
 */
export interface LengthCap {
  bytes: number;
  /** What the cap comes from, for the error message. */
  basis: string;
  /** The error kind when it is passed: "too-large", or "disk" when the cap is the free space itself. */
  kind: Extract<DownloadErrorKind, "too-large" | "disk">;
}

/**
 * The cap for a body whose length the server does not send:
 * - approxBytes known: approxBytes × 1.5 + slack (64 MiB by default). The registry's estimates
 *   are rounded, so real files differ from them, but never by half again.
 * - otherwise the cache budget (cacheMaxBytes) or the free space in the cache dir when the
 *   download starts, whichever is smaller: the file could not be kept anyway.
 */
export function lengthlessCap(
  approxBytes: number | undefined,
  slackBytes: number,
  cacheMaxBytes: number | undefined,
  freeBytes: number,
): LengthCap {
  if (approxBytes !== undefined)
    return { bytes: Math.floor(approxBytes * 1.5) + slackBytes, basis: `approxBytes ${approxBytes} × 1.5 + ${slackBytes} bytes of slack`, kind: "too-large" };
  if (cacheMaxBytes !== undefined && cacheMaxBytes <= freeBytes)
    return { bytes: cacheMaxBytes, basis: "the cache budget (cacheMaxBytes), as the file has no approxBytes", kind: "too-large" };
  return { bytes: Math.max(0, freeBytes), basis: "the free space in the cache dir when the download started, as the file has no approxBytes", kind: "disk" };
}
