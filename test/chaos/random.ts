import { randomInt } from "node:crypto";

/**
 * A seeded pseudo-random source (mulberry32: 32-bit state, fast, good enough to pick victims and job
 * mixes), so a chaos run's choices can be replayed from its seed. Not for anything secret.
 */
export class SeededRandom {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A float in [min, max). */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[this.below(xs.length)];
  }

  /** An independent stream for one concern (so the job mix does not shift when the kill schedule draws more). */
  fork(stream: number): SeededRandom {
    return new SeededRandom(Math.imul(this.seed ^ 0x9e3779b9, stream + 1) ^ stream);
  }
}

/** A seed parsed from text (CHAOS_SEED, --seed), or a new random one when `text` is empty. */
export function chaosSeed(text: string | undefined, source: string): number {
  if (text === undefined || text === "") return randomInt(0, 2 ** 31);
  if (!/^\d{1,10}$/.test(text) || Number(text) >= 2 ** 32) throw new Error(`${source}: a seed is an integer 0..4294967295, not ${JSON.stringify(text)}`);
  return Number(text);
}
