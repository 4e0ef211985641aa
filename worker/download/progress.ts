/** One progress event (for one file, or summed over several). */
export interface DownloadProgress {
  filename: string;
  url: string;
  bytesDone: number;
  /** From Content-Length when known, else approxBytes, else undefined. */
  bytesTotal: number | undefined;
  /** Bytes per second, smoothed. */
  rate: number;
  /** True when the file is checked against a sha256 (or already was). */
  verified: boolean;
}

/**
 * Turns a stream of byte counts into progress events at most every intervalMs
 * (plus the first and the last), with an exponentially smoothed rate.
 */
export class ProgressMeter {
  private lastEmitMs = 0;
  private lastBytes = 0;
  private rate = 0;
  private started = false;

  constructor(
    private readonly intervalMs: number,
    private readonly emit: ((p: DownloadProgress) => void) | undefined,
    private readonly base: Omit<DownloadProgress, "bytesDone" | "rate">,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Reports bytesDone; emits only when the interval has passed (or force). */
  update(bytesDone: number, patch: Partial<Pick<DownloadProgress, "bytesTotal" | "verified">> = {}, force = false): void {
    Object.assign(this.base, patch);
    const t = this.now();
    if (!this.started) {
      this.started = true;
      this.lastEmitMs = t;
      this.lastBytes = bytesDone;
      this.send(bytesDone);
      return;
    }
    const dt = t - this.lastEmitMs;
    if (!force && dt < this.intervalMs) return;
    if (dt > 0) {
      const instant = ((bytesDone - this.lastBytes) * 1000) / dt;
      this.rate = this.rate === 0 ? instant : this.rate * 0.7 + instant * 0.3;
    }
    this.lastEmitMs = t;
    this.lastBytes = bytesDone;
    this.send(bytesDone);
  }

  private send(bytesDone: number): void {
    if (!this.emit) return;
    try {
      this.emit({ ...this.base, bytesDone, rate: Math.max(0, this.rate) });
    } catch {
      // A failing listener must not fail the download.
    }
  }
}
