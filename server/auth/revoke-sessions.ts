import type { AuthEvents } from "./auth-events.js";

/** What dispatch's worker registry offers that revocation needs (structural, so auth does not import dispatch). */
export interface RevocableSessions {
  all(): Array<{ id: string; name: string; tokenId: string; draining: boolean }>;
  remove(workerId: string): unknown;
}

/**
 * Ends the dispatch side of every open session of a revoked token at once: the
 * worker is marked draining and leaves the registry, so no offer reaches it
 * (its leases are left to expire and are re-queued, as after a disconnect).
 * The auth interceptor ends the stream itself with UNAUTHENTICATED.
 * Returns the unsubscribe function.
 */
export function endSessionsOnRevoke(events: AuthEvents, sessions: RevocableSessions, onEnded?: (worker: string) => void): () => void {
  return events.onRevoke((tokenId) => {
    for (const w of sessions.all()) {
      if (w.tokenId !== tokenId) continue;
      w.draining = true;
      sessions.remove(w.id);
      onEnded?.(w.name);
    }
  });
}
