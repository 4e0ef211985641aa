import { writeSync } from "node:fs";
import type { DestinationStream } from "pino";

/** Where the buffered lines go: sonic-boom (pino.destination), or anything with write. */
export interface LineSink {
  /** Writes a batch, asynchronously where the sink does. */
  write(chunk: string): unknown;
  /** Writes what the sink holds now (at exit). */
  flushSync?(): void;
  /** The sink's file descriptor: at exit the last batch is written to it directly, as no asynchronous write runs then. */
  fd?: number;
}

export interface LineBufferOptions {
  /** Lines are handed on once this many characters are waiting. */
  minChars?: number;
  /** ...or this long after the first of them was logged. */
  maxDelayMs?: number;
}

/**
 * A pino destination that gathers lines and hands them to `sink` in one write: at `minChars`,
 * `maxDelayMs` after the first waiting line, and when the process exits (process.exit, a signal
 * it handles, an uncaught exception), where they are written synchronously after what the sink held.
 *
 * sonic-boom buffers too (minLength), but measures the whole waiting buffer in bytes for every
 * line it takes (Buffer.byteLength): with 4 KiB waiting that was most of a job line's cost.
 * Here a line costs a string append; the sink measures each batch once.
 */
export class LineBuffer implements DestinationStream {
  readonly #sink: LineSink;
  readonly #minChars: number;
  readonly #maxDelayMs: number;
  #pending = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onExit = () => this.flushSync();

  constructor(sink: LineSink, { minChars = 4096, maxDelayMs = 100 }: LineBufferOptions = {}) {
    this.#sink = sink;
    this.#minChars = minChars;
    this.#maxDelayMs = maxDelayMs;
    // Before pino's own exit handler, which then writes synchronously what this one handed on.
    process.prependListener("exit", this.#onExit);
  }

  write(line: string): void {
    this.#pending += line;
    if (this.#pending.length >= this.#minChars) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#maxDelayMs);
      this.#timer.unref();
    }
  }

  /** Hands what is waiting to the sink (which writes it asynchronously). */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending === "") return;
    const batch = this.#pending;
    this.#pending = "";
    try {
      this.#sink.write(batch);
    } catch {
      // A sink that is gone (ended at exit, a closed pipe) drops lines; logging never throws.
    }
  }

  /** Writes everything now, the sink's pending writes first, then what waits here (the process is exiting). */
  flushSync(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    this.#pending = "";
    try {
      this.#sink.flushSync?.();
      if (batch === "") return;
      const fd = this.#sink.fd;
      if (typeof fd === "number" && fd >= 0) writeSync(fd, batch);
      else this.#sink.write(batch);
    } catch {
      // Nothing sensible to do with a failure to log at exit.
    }
  }

  /** Flushes and stops listening for the process's exit. */
  close(): void {
    this.flushSync();
    process.off("exit", this.#onExit);
  }
}
