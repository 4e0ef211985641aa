import type { ConnectRouter, HandlerContext, Interceptor } from "@connectrpc/connect";
import type { ServerConfig } from "./config.js";
import type { JobEvents } from "./events/job-events.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "./http/http-routes.js";
import type { ConnectionRefusal } from "./http/listener.js";
import type { Logger } from "./log.js";
import type { Storage } from "./storage/storage.js";

/** What every part of the studio is given: passed in, never reached for through globals. */
export interface StudioContext {
  config: ServerConfig;
  /** Every store, on SQLite or PostgreSQL. */
  storage: Storage;
  events: JobEvents;
  logger: Logger;
  /** Milliseconds since the epoch; tests may pass a controllable clock. */
  now(): number;
  /** Intervals tests shorten or stretch; production uses the defaults. */
  tuning?: StudioTuning;
}

/** Background intervals a test may change (StartOptions.tuning). */
export interface StudioTuning {
  /** Placement's safety sweep beside other replicas (default 2 s); tests stretch it to prove notifications did the work. */
  replicaSweepMs?: number;
}

/**
 * Runs for an RPC once its headers are in and before its body is read (connect's requestGate):
 * throwing a ConnectError ends the call without reading, decompressing or parsing anything.
 */
export type RequestGate = (ctx: HandlerContext) => void | Promise<void>;

/**
 * One part of the studio (registry, jobs, dispatch, auth, metrics, web page).
 * app.ts composes modules; each owns its RPCs, its plain HTTP routes and its background loops.
 */
export interface StudioModule {
  name: string;
  /** Registers this module's services on the shared router. */
  routes?(router: ConnectRouter): void;
  httpRoutes?: HttpRoute[];
  /** Interceptors run for every RPC, in module order. */
  interceptors?: Interceptor[];
  /** Wraps the request gate of the modules after it (module order, as interceptors): refuse a call before its body is read. */
  requestGate?(next: RequestGate): RequestGate;
  /**
   * Sees every HTTP request (RPCs and plain routes) before anything else; returns false when it
   * answered the request itself. It runs for every request, so it must be O(1) and cheap.
   */
  httpGate?(req: HttpRequest, res: HttpResponse): boolean;
  start?(): void | Promise<void>;
  /** Told whenever the listener closes a connection itself (a deadline passed, its address is at its cap). */
  onConnectionRefused?(why: ConnectionRefusal): void;
  /** Stops background work; called in reverse module order on shutdown. */
  stop?(): void | Promise<void>;
}
