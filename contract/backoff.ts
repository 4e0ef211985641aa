/** Settings of a retry delay; the defaults suit reconnecting to a studio: its restart (seconds), an outage (a minute). */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Random source in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter (AWS architecture blog's "full jitter": a random delay
 * between 0 and the capped exponential), so that many workers (or pages) cut off by one studio
 * restart do not reconnect in lockstep. The one retry delay of the worker's session, its downloads
 * and the web page's streams. `reset()` after a success starts again from the smallest delay. The
 * wait itself is node:timers/promises' setTimeout with the caller's signal (or the browser's).
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor({ initialMs = 250, maxMs = 30_000, factor = 2, random = Math.random }: BackoffOptions = {}) {
    if (!(initialMs >= 0) || !(maxMs >= initialMs) || !(factor >= 1))
      throw new RangeError(`bad backoff: initialMs ${initialMs}, maxMs ${maxMs}, factor ${factor}`);
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.random = random;
  }

  /** The cap for the next delay: initial * factor^attempt, at most maxMs. */
  ceiling(): number {
    return Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
  }

  /** The next delay in ms (at least 1/10 of the initial delay), and counts the attempt. */
  next(): number {
    const cap = this.ceiling();
    this.attempt += 1;
    return Math.max(this.initialMs / 10, Math.floor(this.random() * cap));
  }

  /** Consecutive failures so far. */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
