import { describeError, isAbort, isUnauthenticated } from "./errors.js";

/** A live stream's connection state, shown to the operator. */
export type FeedState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "retrying"; error: string; inMs: number }
  | { kind: "unauthenticated"; error: string; cause: unknown };

/**
 * The page's discipline for a server stream (WatchJobs, WatchWorkers): one stream open, no
 * polling; when it breaks, reopen it with backoff (0.5 s doubling to 10 s), each time starting
 * with the server's snapshot; stop for good when the studio refuses the token or the signal aborts.
 */
export async function keepStreaming<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  on: { message(message: T): void; state(state: FeedState): void },
  signal: AbortSignal,
): Promise<void> {
  let delay = 500;
  while (!signal.aborted) {
    on.state({ kind: "connecting" });
    try {
      const stream = open(signal);
      // connect-web does not surface the response headers of a stream, so the feed
      // counts as live once asked; a failure to open replaces this at once.
      on.state({ kind: "live" });
      for await (const message of stream) {
        delay = 500;
        on.message(message);
      }
      // The server ended the stream (shutdown, drain): reopen.
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      if (isUnauthenticated(err)) {
        on.state({ kind: "unauthenticated", error: describeError(err), cause: err });
        return;
      }
      on.state({ kind: "retrying", error: describeError(err), inMs: delay });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

/** Describes a stream's state for the status line; `what` names it ("job stream"). */
export function feedMessage(state: FeedState, what = "job stream"): { text: string; error: boolean } {
  switch (state.kind) {
    case "connecting":
      return { text: `Connecting to the ${what}…`, error: false };
    case "live":
      return { text: "Live: changes appear as they happen.", error: false };
    case "retrying":
      return {
        text: `The ${what} broke (${state.error}); reconnecting in ${Math.round(state.inMs / 100) / 10} s.`,
        error: true,
      };
    case "unauthenticated":
      return { text: state.error, error: true };
  }
}
