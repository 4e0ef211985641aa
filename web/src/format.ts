import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

/** A timestamp in the reader's locale, or "—". */
export function formatTime(ts: Timestamp | undefined): string {
  if (!ts || (ts.seconds === 0n && ts.nanos === 0)) return "—";
  return timestampDate(ts).toLocaleString();
}

/** "12 s ago" style age of a timestamp against now. */
export function formatAge(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts || ts.seconds === 0n) return "never";
  const s = Math.max(0, Math.round((now - timestampDate(ts).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** Milliseconds since the epoch of a timestamp (0 when unset), for ordering. */
export function millis(ts: Timestamp | undefined): number {
  return ts ? timestampDate(ts).getTime() : 0;
}
