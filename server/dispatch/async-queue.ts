/**
 * An unbounded queue consumed as an async iterable: the session's outgoing side,
 * so offers, cancels and receipts can be pushed at any time while requests are
 * read concurrently. close() ends the iteration (with an error, rethrown to the reader).
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;
  #error: unknown;

  push(item: T): boolean {
    if (this.#closed) return false;
    this.#items.push(item);
    this.#wake();
    return true;
  }

  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#wake();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #wake() {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.#items.length > 0) yield this.#items.shift()!;
      if (this.#closed) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }
}
