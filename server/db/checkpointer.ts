import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { StudioDb } from "./open.js";

/** How often the checkpoint thread copies the WAL back into the database file. */
export const CHECKPOINT_INTERVAL_MS = 200;

/**
 * SQLite's WAL checkpoints on a thread of their own. By default the connection that commits past
 * 1,000 WAL pages runs the checkpoint inside that COMMIT: it copies the pages back and, with
 * synchronous=NORMAL, fsyncs the WAL and the database file, all on the event loop. Measured on
 * this machine (claim, complete and create in one transaction, 20,000 times): p99.9 of a
 * transaction 5.3 ms and up to 18 ms with those checkpoints, 0.5 ms without; every job whose offer
 * or receipt waited behind one saw it. Here the studio's own connection never checkpoints
 * (wal_autocheckpoint = 0) and a second connection, on a worker thread, runs a PASSIVE checkpoint
 * every CHECKPOINT_INTERVAL_MS: it never blocks the studio's writers or readers, and its fsync
 * waits on that thread. If the thread cannot start or fails, the studio's connection checkpoints
 * itself again, as before.
 */
export class Checkpointer {
  readonly #worker: Worker;
  readonly #stopped: Promise<void>;
  #stopping = false;

  private constructor(db: StudioDb, logger: Logger | undefined, intervalMs: number) {
    db.sqlite.exec("PRAGMA wal_autocheckpoint = 0");
    const fallBack = (why: string) => {
      if (this.#stopping) return;
      logger?.warn({ why }, "the SQLite checkpoint thread stopped; the studio's connection checkpoints again");
      try {
        db.sqlite.exec("PRAGMA wal_autocheckpoint = 1000");
      } catch {
        // The database is closed already.
      }
    };
    this.#worker = new Worker(new URL("./checkpoint-thread.ts", import.meta.url), { workerData: { path: db.path, intervalMs } });
    this.#worker.unref();
    this.#stopped = new Promise<void>((resolve) => {
      this.#worker.on("message", (m: { type: string; message?: string }) => {
        if (m.type === "error") logger?.warn({ err: m.message }, "SQLite checkpoint failed; the next one retries");
        if (m.type === "stopped") resolve();
      });
      this.#worker.on("error", (err: unknown) => fallBack(err instanceof Error ? err.message : String(err)));
      this.#worker.on("exit", () => {
        fallBack("the thread exited");
        resolve();
      });
    });
  }

  /** Starts the checkpoint thread for a database the studio has opened. */
  static start(db: StudioDb, { logger, intervalMs = CHECKPOINT_INTERVAL_MS }: { logger?: Logger; intervalMs?: number } = {}): Checkpointer {
    return new Checkpointer(db, logger, intervalMs);
  }

  /** Runs a last checkpoint and closes the thread's connection; call before the studio's connection closes. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#stopped;
    this.#stopping = true;
    this.#worker.postMessage({ type: "stop" });
    const timer = setTimeout(() => void this.#worker.terminate(), 10_000);
    await this.#stopped;
    clearTimeout(timer);
  }
}
