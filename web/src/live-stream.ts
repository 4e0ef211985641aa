import { Backoff } from "../../contract/backoff.js";
import { describeError, isAbort, isUnauthenticated } from "./errors.js";

/** A live stream's connection state, shown to the operator. */
export type FeedState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "retrying"; error: string; inMs: number }
  | { kind: "unauthenticated"; error: string; cause: unknown };

/**
 * The page's discipline for a server stream (WatchJobs, WatchWorkers): one stream open, no
 * polling; when it breaks, reopen it with backoff (up to 0.5 s doubling to 10 s, jittered), each time starting
 * with the server's snapshot; stop for good when the studio refuses the token or the signal aborts.
 */
export async function keepStreaming<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  on: { message(message: T): void; state(state: FeedState): void },
  signal: AbortSignal,
): Promise<void> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  while (!signal.aborted) {
    on.state({ kind: "connecting" });
    let failure: string | undefined;
    try {
      const stream = open(signal);
      // connect-web does not surface the response headers of a stream, so the feed
      // counts as live once asked; a failure to open replaces this at once.
      on.state({ kind: "live" });
      for await (const message of stream) {
        backoff.reset();
        on.message(message);
      }
      // The server ended the stream (shutdown, drain): reopen.
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      if (isUnauthenticated(err)) {
        on.state({ kind: "unauthenticated", error: describeError(err), cause: err });
        return;
      }
      failure = describeError(err);
    }
    const inMs = backoff.next();
    if (failure !== undefined) on.state({ kind: "retrying", error: failure, inMs });
    await new Promise((r) => setTimeout(r, inMs));
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
