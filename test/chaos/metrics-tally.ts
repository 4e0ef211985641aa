/** The counters the chaos run reports, by their Prometheus names. */
const COUNTERS = {
  leaseExpiries: "studio_lease_expiries_total",
  jobRetries: "studio_job_retries_total",
  offers: "studio_offers_total",
} as const;
type Key = keyof typeof COUNTERS;

/** Reads one unlabelled counter from Prometheus text; undefined when absent. */
export function readCounter(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{\\})? ([0-9.eE+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Sums the studio's counters across restarts: counters live in memory and start at zero in every
 * studio process, so the run keeps the last value seen per process and adds them up. Scrape right
 * before a kill so that little is lost.
 */
export class MetricsTally {
  private done: Record<Key, number> = { leaseExpiries: 0, jobRetries: 0, offers: 0 };
  private current: Record<Key, number> = { leaseExpiries: 0, jobRetries: 0, offers: 0 };

  constructor(private readonly baseUrl: string) {}

  async scrape(): Promise<void> {
    try {
      const res = await fetch(`${this.baseUrl}/metrics`, { signal: AbortSignal.timeout(2000) });
      if (res.status !== 200) return;
      const text = await res.text();
      for (const [key, name] of Object.entries(COUNTERS) as Array<[Key, string]>) {
        const v = readCounter(text, name);
        if (v !== undefined) this.current[key] = Math.max(this.current[key], v);
      }
    } catch {
      // The studio is down; the next scrape catches up.
    }
  }

  /** The studio is about to be replaced by a new process. */
  newIncarnation(): void {
    for (const key of Object.keys(this.current) as Key[]) this.done[key] += this.current[key];
    this.current = { leaseExpiries: 0, jobRetries: 0, offers: 0 };
  }

  totals(): Record<Key, number> {
    const out = { ...this.done };
    for (const key of Object.keys(out) as Key[]) out[key] += this.current[key];
    return out;
  }
}
