/** Raised to a sender when the session its message was meant for has ended. */
export class SessionClosedError extends Error {
  readonly code = "session_closed";
  constructor(message = "the session to the studio closed") {
    super(message);
    this.name = "SessionClosedError";
  }
}

interface Pending<T> {
  message: T;
  taken: () => void;
  dropped: (err: Error) => void;
}

/**
 * The request side of one bidi stream: an async iterable the transport pulls from, and `send`
 * for everyone else. `send` resolves when the transport has taken the message, which gives
 * uploads backpressure (a 1 GiB output is not queued in memory at once); `post` does not wait.
 * Closing ends the iteration; messages not yet taken are dropped with SessionClosedError.
 */
export class Outbox<T> implements AsyncIterable<T> {
  private queue: Pending<T>[] = [];
  private wake: (() => void) | undefined;
  private closed: Error | undefined;

  /** Queues a message; resolves once the stream has taken it, rejects if the session ends first. */
  send(message: T): Promise<void> {
    if (this.closed) return Promise.reject(new SessionClosedError(this.closed.message));
    return new Promise((taken, dropped) => {
      this.queue.push({ message, taken, dropped });
      this.wake?.();
    });
  }

  /** Queues a message without waiting; false when the session has already ended. */
  post(message: T): boolean {
    if (this.closed) return false;
    this.send(message).catch(() => {});
    return true;
  }

  /**
   * Lets the last message still waiting to be taken absorb this one (`merge` returns true when it
   * did), else queues it like post: a message the stream has not taken yet can still grow, so
   * what is produced faster than the stream takes it travels in fewer messages, in order.
   */
  postOrMerge(message: T, merge: (waiting: T) => boolean): boolean {
    if (this.closed) return false;
    const last = this.queue.at(-1);
    if (last && merge(last.message)) return true;
    return this.post(message);
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** Ends the stream; queued messages are dropped with the reason. */
  close(reason: Error = new SessionClosedError()): void {
    if (this.closed) return;
    this.closed = reason;
    for (const p of this.queue.splice(0)) p.dropped(new SessionClosedError(reason.message));
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        next.taken();
        yield next.message;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
