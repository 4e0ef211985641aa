/** Why a guard gave up on a connection. */
export type ExpiryReason = "headers" | "idle";

/**
 * The deadlines of one connection. A new connection must present a complete request (an HTTP/1.1
 * request head, an HTTP/2 stream) within headersTimeoutMs of being accepted; TLS handshake and
 * protocol sniffing count against that. Afterwards, whenever it has no request or stream open, it
 * must start one within idleTimeoutMs. A connection with something open (a worker's session, a
 * WatchJobs stream, a long-poll) has no deadline here.
 *
 * Cheap on purpose, since every request passes through it: starting and ending a request is a
 * counter and, at the end, one clock read. A single timer per connection is rearmed lazily
 * when it fires rather than cleared and set on every request.
 */
export class ConnectionGuard {
  #open = 0;
  /** When the connection expires (performance.now() ms), or Infinity while something is open. */
  #deadline: number;
  #reason: ExpiryReason = "headers";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

  constructor(
    private readonly idleTimeoutMs: number,
    headersTimeoutMs: number,
    private readonly expire: (reason: ExpiryReason) => void,
  ) {
    this.#deadline = performance.now() + headersTimeoutMs;
    this.#arm(headersTimeoutMs);
  }

  /** A request (HTTP/1.1) or stream (HTTP/2) began. */
  started(): void {
    this.#open += 1;
    this.#deadline = Number.POSITIVE_INFINITY;
  }

  /** A request or stream ended; with none left, the idle deadline starts. */
  ended = (): void => {
    this.#open -= 1;
    if (this.#open > 0 || this.#done) return;
    this.#reason = "idle";
    this.#deadline = performance.now() + this.idleTimeoutMs;
    if (this.#timer === undefined) this.#arm(this.idleTimeoutMs);
  };

  /** Requests or streams open now. */
  get open(): number {
    return this.#open;
  }

  /** The connection closed: no more deadlines. */
  dispose(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number) {
    this.#timer = setTimeout(this.#check, Math.max(1, Math.ceil(ms)));
    this.#timer.unref?.();
  }

  #check = () => {
    this.#timer = undefined;
    if (this.#done || this.#open > 0) return;
    const left = this.#deadline - performance.now();
    if (left > 0) return this.#arm(left);
    this.dispose();
    this.expire(this.#reason);
  };
}
