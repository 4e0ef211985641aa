import type { Http2ServerRequest, Http2Session } from "node:http2";
import type { HandlerContext } from "@connectrpc/connect";
import { nodeRequestKey } from "../http/peer-context.js";
import type { Dispatcher } from "./dispatcher.js";
import type { WorkerEntry, WorkerRegistry } from "./worker-registry.js";

/** What the probe needs. */
export interface PeerLivenessDeps {
  registry: WorkerRegistry;
  dispatcher: Dispatcher;
  now: () => number;
  /** How often a quiet worker's connection is pinged (the heartbeat interval, at most half the lease TTL). */
  intervalMs: number;
}

/** One HTTP/2 connection's PING state, shared by every session on it: at most one PING in flight. */
interface ConnectionPing {
  inFlight: boolean;
  answered: Array<() => void>;
}
const pings = new WeakMap<Http2Session, ConnectionPing>();

/**
 * Keeps an idle session eligible for offers without messages from the worker: while the worker is
 * quiet, its HTTP/2 connection is pinged every interval, and each answer stamps `peerAckAt`. A worker
 * stopped, hung or gone answers no PING and turns silent after one lease TTL (WorkerRegistry.isSilent);
 * its answer after that wakes placement. Returns the function that stops the probe.
 */
export function probePeer(deps: PeerLivenessDeps, worker: WorkerEntry, handlerCtx: HandlerContext): () => void {
  // Over HTTP/2 (every Session is: it is a bidi stream) the Node request holds its connection.
  const req = handlerCtx.values.get(nodeRequestKey) as Partial<Http2ServerRequest> | undefined;
  const session = req?.stream?.session;
  if (!session) return () => {};
  const answered = () => {
    const wasSilent = deps.registry.isSilent(worker);
    worker.peerAckAt = deps.now();
    if (wasSilent && !deps.registry.isSilent(worker)) deps.dispatcher.wake();
  };
  const timer = setInterval(() => {
    const now = deps.now();
    const heard = Math.max(worker.lastHeartbeat, worker.peerAckAt ?? Number.NEGATIVE_INFINITY);
    if (now - heard >= deps.intervalMs) ping(session, answered);
  }, deps.intervalMs);
  timer.unref?.();
  return () => clearInterval(timer);
}

function ping(session: Http2Session, answered: () => void): void {
  if (session.closed || session.destroyed) return;
  let state = pings.get(session);
  if (!state) pings.set(session, (state = { inFlight: false, answered: [] }));
  state.answered.push(answered);
  if (state.inFlight) return;
  state.inFlight = true;
  const s = state;
  try {
    session.ping((err) => {
      s.inFlight = false;
      const waiting = s.answered.splice(0);
      if (!err) for (const f of waiting) f();
    });
  } catch {
    // The connection is closing; its sessions end with it.
    s.inFlight = false;
    s.answered.length = 0;
  }
}
