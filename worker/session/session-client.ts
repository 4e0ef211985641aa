import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  SessionRequestSchema,
  WorkerService,
  type SessionRequest,
  type SessionResponse,
  type Welcome,
  type WorkerHello,
  WorkerHeartbeatSchema,
} from "../../gen/studio/v1/worker_service_pb.js";
import type { Logger } from "pino";
import { setTimeout as sleep } from "node:timers/promises";
import { Backoff } from "../../contract/backoff.js";
import { Outbox, SessionClosedError } from "./outbox.js";

/** One request of the session, as its oneof: `{ case: "progress", value: {...} }`. */
export type SessionMessage = SessionRequest["message"];

/** A session that has been welcomed by the studio. */
export interface LiveSession {
  /** Counts connections from 1; tells a reconnect apart from the session a message was meant for. */
  readonly id: number;
  readonly welcome: Welcome;
  /** Resolves when the transport took the message; rejects with SessionClosedError if the session ended. */
  send(message: SessionMessage): Promise<void>;
  /** Fire and forget (progress, heartbeats); false when the session has ended. */
  post(message: SessionMessage): boolean;
  /** As post, unless the last message still waiting to go out absorbs it (`merge` returns true). */
  postOrMerge(message: SessionMessage, merge: (waiting: SessionMessage) => boolean): boolean;
  readonly isClosed: boolean;
}

/** What the client calls while a session runs. */
export interface SessionHandlers {
  /** Builds hello for each connection: leases held and digests cached change between connections. */
  hello(): WorkerHello;
  /** The lease ids to renew on each heartbeat. */
  leaseIds(): string[];
  welcome(session: LiveSession): void;
  /** Offers, cancel orders and receipts. */
  message(message: SessionResponse["message"], session: LiveSession): void;
  /** The session ended (error undefined when it ended cleanly). */
  closed(session: LiveSession | undefined, error: Error | undefined): void;
}

export interface SessionClientOptions {
  /** The studio, or several replicas of it: each new session goes to the next one (after a backoff delay). */
  transport: Transport | readonly Transport[];
  /** The URLs of the transports, for log lines. */
  servers?: readonly string[];
  handlers: SessionHandlers;
  logger: Logger;
  token?: string;
  backoff?: Backoff;
  /** A session that lasted this long after welcome resets the backoff. */
  healthyAfterMs?: number;
  /** Give up on a connection that sends no welcome within this time. */
  welcomeTimeoutMs?: number;
}

/** Raised when the studio refuses this worker's credentials: retrying cannot help. */
export class SessionRefusedError extends Error {
  readonly code = "session_refused";
  constructor(readonly connectCode: Code, message: string) {
    super(message);
    this.name = "SessionRefusedError";
  }
}

/**
 * Keeps one WorkerService.Session open: sends hello, waits for welcome, heartbeats on the
 * studio's interval with the leases held, hands what the studio sends to the handlers, and
 * reconnects with backoff and jitter when the stream ends. A refused token stops it for good.
 */
export class SessionClient {
  private readonly clients;
  private next = 0;
  private readonly backoff: Backoff;
  private readonly stopper = new AbortController();
  private live: LiveSession | undefined;
  private waiters: Array<{ resolve: (s: LiveSession) => void; reject: (e: Error) => void }> = [];
  private current: { outbox: Outbox<SessionRequest>; abort: AbortController } | undefined;
  private connections = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: SessionClientOptions) {
    const transports = Array.isArray(options.transport) ? (options.transport as readonly Transport[]) : [options.transport as Transport];
    if (transports.length === 0) throw new RangeError("SessionClient needs at least one transport");
    this.clients = transports.map((t) => createClient(WorkerService, t));
    this.backoff = options.backoff ?? new Backoff();
  }

  /** Starts connecting; resolves when stopped, rejects with SessionRefusedError on a refused token. */
  run(): Promise<void> {
    this.loop ??= this.runLoop();
    return this.loop;
  }

  /** The welcomed session, if one is up. */
  get session(): LiveSession | undefined {
    return this.live && !this.live.isClosed ? this.live : undefined;
  }

  /** The welcomed session, waiting for the next one if none is up; rejects when the signal aborts. */
  waitForSession(signal?: AbortSignal): Promise<LiveSession> {
    const now = this.session;
    if (now) return Promise.resolve(now);
    if (this.stopper.signal.aborted) return Promise.reject(new SessionClosedError("the worker is stopping"));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (s: LiveSession) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(s);
        },
        reject: (e: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason ?? new SessionClosedError("the worker is stopping"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /**
   * Stops reconnecting and ends the current stream: half-closes it and waits up to graceMs for
   * the studio to end its side, then cuts it.
   */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.stopper.signal.aborted) this.stopper.abort(new SessionClosedError("the worker is stopping"));
    for (const w of this.waiters.splice(0)) w.reject(new SessionClosedError("the worker is stopping"));
    const cur = this.current;
    if (cur) {
      cur.outbox.close(new SessionClosedError("the worker is stopping"));
      const timer = setTimeout(() => cur.abort.abort(), graceMs);
      await this.loop?.catch(() => {});
      clearTimeout(timer);
    }
    await this.loop?.catch(() => {});
  }

  private async runLoop(): Promise<void> {
    const { logger } = this.options;
    while (!this.stopper.signal.aborted) {
      const started = Date.now();
      let welcomedAt: number | undefined;
      let error: Error | undefined;
      try {
        welcomedAt = await this.connectOnce((at) => (welcomedAt = at));
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
      const session = this.live;
      this.live = undefined;
      this.options.handlers.closed(session, error);
      if (error instanceof SessionRefusedError) throw error;
      if (this.stopper.signal.aborted) break;
      const healthy = this.options.healthyAfterMs ?? 10_000;
      if (welcomedAt !== undefined && Date.now() - welcomedAt >= healthy) this.backoff.reset();
      const delay = this.backoff.next();
      logger.warn(
        { err: error?.message, afterMs: Date.now() - started, retryInMs: delay, attempt: this.backoff.attempts },
        "session to the studio ended; reconnecting",
      );
      // Stopping ends the wait at once (the loop then sees the signal).
      await sleep(delay, undefined, { signal: this.stopper.signal }).catch(() => {});
    }
  }

  /** Hands one message of a batch to the handlers; a batch never holds a welcome or another batch. */
  private deliver(msg: SessionResponse["message"], session: LiveSession): void {
    if (msg.case === "welcome" || msg.case === "batch") throw new Error(`the studio sent ${msg.case} inside a batch`);
    this.options.handlers.message(msg, session);
  }

  /** One connection, from hello to the end of the response stream. */
  private async connectOnce(onWelcome: (at: number) => void): Promise<number | undefined> {
    const { handlers, logger, token } = this.options;
    const outbox = new Outbox<SessionRequest>();
    const abort = new AbortController();
    this.current = { outbox, abort };
    const id = ++this.connections;
    // Batches are unpacked here, so the handlers see each message alone either way.
    const hello = handlers.hello();
    hello.acceptsBatches = true;
    const wrap = (message: SessionMessage) => create(SessionRequestSchema, { message });
    outbox.post(wrap({ case: "hello", value: hello }));
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const welcomeTimer = setTimeout(
      () => abort.abort(new Error("the studio sent no welcome in time")),
      this.options.welcomeTimeoutMs ?? 15_000,
    );
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let welcomedAt: number | undefined;
    try {
      // Each connection goes to the next studio replica in turn (one URL: always the same).
      const index = this.next;
      this.next = (this.next + 1) % this.clients.length;
      if (this.clients.length > 1) logger.info({ server: this.options.servers?.[index] ?? index }, "connecting to the studio");
      const responses = this.clients[index]!.session(outbox, { signal: abort.signal, headers });
      for await (const res of responses) {
        const msg = res.message;
        if (this.live === undefined) {
          if (msg.case !== "welcome") throw new Error(`the studio sent ${msg.case ?? "an empty message"} before welcome`);
          clearTimeout(welcomeTimer);
          welcomedAt = Date.now();
          onWelcome(welcomedAt);
          const session: LiveSession = {
            id,
            welcome: msg.value,
            send: (m) => outbox.send(wrap(m)),
            post: (m) => outbox.post(wrap(m)),
            postOrMerge: (m, merge) => outbox.postOrMerge(wrap(m), (waiting) => merge(waiting.message)),
            get isClosed() {
              return outbox.isClosed;
            },
          };
          this.live = session;
          logger.info(
            {
              workerId: msg.value.workerId,
              heartbeatMs: msg.value.heartbeatIntervalMs,
              kept: msg.value.keptLeaseIds.length,
              lost: msg.value.lostLeaseIds.length,
            },
            "connected to the studio",
          );
          const every = Math.max(100, msg.value.heartbeatIntervalMs || 10_000);
          heartbeat = setInterval(
            () => session.post({ case: "heartbeat", value: create(WorkerHeartbeatSchema, { leaseIds: handlers.leaseIds() }) }),
            every,
          );
          handlers.welcome(session);
          for (const w of this.waiters.splice(0)) w.resolve(session);
          continue;
        }
        if (msg.case === "batch") for (const inner of msg.value.messages) this.deliver(inner.message, this.live);
        else handlers.message(msg, this.live);
      }
      if (welcomedAt === undefined) throw new Error("the studio ended the session before welcome");
      return welcomedAt;
    } catch (err) {
      if (err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied))
        throw new SessionRefusedError(err.code, `the studio refused this worker: ${err.rawMessage}`);
      throw err;
    } finally {
      clearTimeout(welcomeTimer);
      clearInterval(heartbeat);
      outbox.close();
      abort.abort();
      if (this.current?.outbox === outbox) this.current = undefined;
    }
  }
}
