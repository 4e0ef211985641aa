import { create } from "@bufbuild/protobuf";
import { SessionResponseSchema, type SessionResponse } from "../../gen/studio/v1/worker_service_pb.js";

/** Most messages one SessionResponseBatch carries (a worker holds at most 64 slots). */
export const MAX_BATCH_MESSAGES = 64;

/**
 * A session's outgoing side: offers, cancels and receipts are pushed at any time while requests
 * are read, and leave in order. To a worker that accepts batches, what is pushed by the code running
 * now (up to the next microtask) leaves as one SessionResponseBatch (a receipt and the offer for the
 * slot it freed; the offers of one placement round): one message through the RPC stack instead of
 * several, which is most of what a message costs, without waiting for another turn of the event
 * loop. Other workers get each message alone, as soon as it is pushed.
 *
 * A plain iterator rather than an async generator: one consumer (the RPC's response stream) pulls.
 */
export class SessionOutbox implements AsyncIterable<SessionResponse> {
  #items: SessionResponse[] = [];
  #waiter: { resolve: (r: IteratorResult<SessionResponse>) => void; reject: (e: unknown) => void } | undefined;
  #flushing = false;
  #closed = false;
  #error: unknown;

  constructor(readonly batches: boolean) {}

  /** Queues a message; false once the outbox closed. */
  push(item: SessionResponse): boolean {
    if (this.#closed) return false;
    this.#items.push(item);
    if (this.#waiter === undefined) return true;
    if (!this.batches) this.#answer();
    else if (!this.#flushing) {
      // Whatever else the code running now pushes (the offer right after a receipt) joins the batch.
      this.#flushing = true;
      queueMicrotask(() => {
        this.#flushing = false;
        this.#answer();
      });
    }
    return true;
  }

  /** Ends the stream once what is queued has left; with an error, the reader gets it after them. */
  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    if (this.#waiter !== undefined && !this.#flushing) this.#answer();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Hands the waiting reader what is queued, or the end. */
  #answer(): void {
    const w = this.#waiter;
    if (w === undefined) return;
    if (this.#items.length > 0) {
      this.#waiter = undefined;
      w.resolve({ done: false, value: this.#take() });
    } else if (this.#closed) {
      this.#waiter = undefined;
      if (this.#error !== undefined) w.reject(this.#error);
      else w.resolve({ done: true, value: undefined });
    }
  }

  /** The next message to send: the oldest alone, or (batches) up to MAX_BATCH_MESSAGES of them in one. */
  #take(): SessionResponse {
    if (!this.batches || this.#items.length === 1) return this.#items.shift()!;
    const messages = this.#items.length <= MAX_BATCH_MESSAGES ? this.#items : this.#items.slice(0, MAX_BATCH_MESSAGES);
    this.#items = this.#items.length <= MAX_BATCH_MESSAGES ? [] : this.#items.slice(MAX_BATCH_MESSAGES);
    return create(SessionResponseSchema, { message: { case: "batch", value: { messages } } });
  }

  [Symbol.asyncIterator](): AsyncIterator<SessionResponse> {
    return {
      next: () => {
        if (this.#waiter !== undefined) return Promise.reject(new Error("SessionOutbox has one reader"));
        if (this.#items.length > 0) return Promise.resolve({ done: false, value: this.#take() });
        if (this.#closed)
          return this.#error !== undefined ? Promise.reject(this.#error) : Promise.resolve({ done: true, value: undefined });
        return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
      },
      return: () => {
        this.close();
        this.#items = [];
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
