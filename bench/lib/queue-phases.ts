import type { Child } from "./child.js";
import { cpuSeconds } from "./proc-stats.js";
import { epochMs, summarize, type LatencySummary } from "./stats.js";
import { isReport, type FromWorker, type ToWorker } from "./worker-messages.js";

/** One queue under test (ours or BullMQ), as the phases drive it. */
export interface QueueUnderTest {
  name: string;
  /** Queues one job with the small task; resolves to its id once the queue has accepted it. */
  create(i: number): Promise<string>;
  workers: Child<ToWorker, FromWorker>[];
  /** The queue's server process (the studio, redis-server), whose CPU use a throughput phase reports. */
  serverPid?: number;
  /**
   * Every server-side process by label (each studio replica, the database's processes), read at
   * the start and end of a throughput phase: its CPU seconds over the phase are reported per label.
   */
  processes?: () => Record<string, number[]>;
}

/** What a throughput phase measured. */
export interface ThroughputResult {
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  /** Offer latency under load: includes time queued behind busy workers. */
  offerLatencyMs: LatencySummary;
  /** The server process's CPU over the phase, in % of one core (NaN without serverPid). */
  serverCpuPercent: number;
  /** The server process's CPU time over the phase divided by the jobs (NaN without serverPid). */
  serverCpuMsPerJob: number;
  /** The worker processes' CPU time over the phase, all together, divided by the jobs. */
  workersCpuMsPerJob: number;
  /** This (creating) process's CPU time over the phase divided by the jobs. */
  creatorCpuMsPerJob: number;
  /** CPU seconds over the phase of each labelled server-side process group (QueueUnderTest.processes). */
  cpuSecondsBy: Record<string, number>;
  /** Worker holding a job → its completion confirmed by the queue: the commit round trip. */
  serviceMs: LatencySummary;
  /**
   * Within one worker process: completion confirmed → next job received. With one slot per process
   * and jobs waiting, this is how long the queue takes to hand a freed worker its next job.
   */
  handoffMs: LatencySummary;
}

/** What an idle-latency phase measured. */
export interface LatencyResult {
  offerLatencyMs: LatencySummary;
}

type Report = Extract<FromWorker, { type: "report" }>;

/** Clears every worker's log and waits until each has done so (a report after a reset is empty). */
async function resetWorkers(q: QueueUnderTest, eager: boolean): Promise<void> {
  for (const w of q.workers) {
    w.send({ type: "reset" });
    w.send({ type: "mode", eager });
    w.send({ type: "report" });
  }
  await Promise.all(q.workers.map((w) => w.waitFor(isReport)));
}

/**
 * Adds up the workers' progress messages; `until(n)` resolves once n jobs have completed, and
 * rejects when no job completed for `stallMs` (a lost job fails the run instead of hanging it).
 */
class Completions {
  private readonly counts = new Map<number, number>();
  private waiter: { target: number; resolve: () => void; rearm: () => void } | undefined;

  constructor(private readonly q: QueueUnderTest) {
    q.workers.forEach((w) => {
      w.onMessage = (m) => {
        if (m.type === "progress") {
          this.counts.set(w.pid, m.completed);
          this.waiter?.rearm();
          if (this.waiter && this.total() >= this.waiter.target) this.waiter.resolve();
        } else if (m.type === "error") console.error(`${q.name} worker ${w.pid}: ${m.message}`);
      };
    });
  }

  total(): number {
    return [...this.counts.values()].reduce((s, n) => s + n, 0);
  }

  until(target: number, stallMs: number): Promise<void> {
    if (this.total() >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stalled = () => {
        this.waiter = undefined;
        reject(new Error(`${this.q.name}: stalled at ${this.total()} of ${target} jobs completed (none for ${stallMs} ms)`));
      };
      let timer = setTimeout(stalled, stallMs);
      this.waiter = {
        target,
        rearm: () => {
          clearTimeout(timer);
          timer = setTimeout(stalled, stallMs);
        },
        resolve: () => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        },
      };
    });
  }

  close(): void {
    this.q.workers.forEach((w) => (w.onMessage = undefined));
  }
}

async function collect(q: QueueUnderTest): Promise<Report[]> {
  for (const w of q.workers) w.send({ type: "report" });
  return Promise.all(q.workers.map((w) => w.waitFor(isReport)));
}

/** Per job, received → completed; per process, each completion → the next receipt after it. */
function workerTimings(reports: Report[]): { service: number[]; handoff: number[] } {
  const service: number[] = [];
  const handoff: number[] = [];
  for (const r of reports) {
    const jobs = r.jobIds.map((_, i) => ({ received: r.receivedMs[i]!, completed: r.completedMs[i]! })).sort((a, b) => a.received - b.received);
    jobs.forEach((j, i) => {
      if (!Number.isNaN(j.completed)) service.push(j.completed - j.received);
      const next = jobs[i + 1];
      if (next && !Number.isNaN(j.completed) && next.received >= j.completed) handoff.push(next.received - j.completed);
    });
  }
  return { service, handoff };
}

function latencies(created: Map<string, number>, reports: Report[]): number[] {
  const out: number[] = [];
  for (const r of reports)
    r.jobIds.forEach((id, i) => {
      const t0 = created.get(id);
      if (t0 !== undefined) out.push(r.receivedMs[i]! - t0);
    });
  return out;
}

/**
 * Creates `jobs` jobs with at most `window` creates in flight and waits for every completion.
 * Jobs per second counts from the first create call to the last confirmed completion.
 */
export async function throughputPhase(
  q: QueueUnderTest,
  { jobs, window, stallMs = 60_000 }: { jobs: number; window: number; stallMs?: number },
): Promise<ThroughputResult> {
  return loadedPhase(q, jobs, stallMs, async (created) => {
    let next = 0;
    const lane = async () => {
      while (next < jobs) {
        const i = next++;
        const t0 = epochMs();
        created.set(await q.create(i), t0);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, jobs) }, lane));
  });
}

/** CPU seconds so far of the server, the workers (together) and this process. */
function cpuSnapshot(q: QueueUnderTest): { server: number; workers: number; creator: number; groups: Map<string, Map<number, number>> } {
  const self = process.cpuUsage();
  return {
    server: q.serverPid ? cpuSeconds(q.serverPid) : Number.NaN,
    workers: q.workers.reduce((s, w) => s + cpuSeconds(w.pid), 0),
    creator: (self.user + self.system) / 1e6,
    groups: groupCpu(q),
  };
}

/** CPU seconds so far of every pid of each labelled process group. */
function groupCpu(q: QueueUnderTest): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const [label, pids] of Object.entries(q.processes?.() ?? {})) {
    const byPid = new Map<number, number>();
    for (const pid of pids)
      try {
        byPid.set(pid, cpuSeconds(pid));
      } catch {
        // Gone already.
      }
    out.set(label, byPid);
  }
  return out;
}

/** CPU seconds each group used between two readings (a process that appeared meanwhile counts whole). */
function groupCpuSince(now: Map<string, Map<number, number>>, before: Map<string, Map<number, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [label, pids] of now) {
    let sum = 0;
    for (const [pid, cpu] of pids) sum += cpu - (before.get(label)?.get(pid) ?? 0);
    out[label] = sum;
  }
  return out;
}

/**
 * What the closed and the open loop share: workers reset, CPU read around the phase, every
 * completion awaited. `createAll` creates the `jobs` jobs, noting when each create call began
 * (`created`, by job id); the phase's clock starts at `start`.
 */
async function loadedPhase(
  q: QueueUnderTest,
  jobs: number,
  stallMs: number,
  createAll: (created: Map<string, number>, start: number) => Promise<void>,
): Promise<ThroughputResult> {
  await resetWorkers(q, false);
  const created = new Map<string, number>();
  const completions = new Completions(q);
  const cpu0 = cpuSnapshot(q);
  const start = epochMs();
  try {
    await createAll(created, start);
    await completions.until(jobs, stallMs);
  } finally {
    completions.close();
  }
  const cpuWall = (epochMs() - start) / 1000;
  const cpu1 = cpuSnapshot(q);
  const cpuUsed = cpu1.server - cpu0.server;
  const serverCpuPercent = (cpuUsed / cpuWall) * 100;
  const reports = await collect(q);
  const lastCompletion = Math.max(...reports.flatMap((r) => r.completedMs.filter((t) => !Number.isNaN(t))));
  const seconds = (lastCompletion - start) / 1000;
  const { service, handoff } = workerTimings(reports);
  return {
    jobs,
    seconds,
    jobsPerSecond: jobs / seconds,
    offerLatencyMs: summarize(latencies(created, reports)),
    serverCpuPercent,
    serverCpuMsPerJob: (cpuUsed * 1000) / jobs,
    workersCpuMsPerJob: ((cpu1.workers - cpu0.workers) * 1000) / jobs,
    creatorCpuMsPerJob: ((cpu1.creator - cpu0.creator) * 1000) / jobs,
    cpuSecondsBy: groupCpuSince(cpu1.groups, cpu0.groups),
    serviceMs: summarize(service),
    handoffMs: summarize(handoff),
  };
}

/**
 * Creates jobs one at a time, each after the previous one completed and a `gapMs` pause, so that
 * every job finds all workers idle, waiting for work. Measures job created → worker holding it.
 */
export async function idleLatencyPhase(
  q: QueueUnderTest,
  { jobs, gapMs = 5, stallMs = 30_000 }: { jobs: number; gapMs?: number; stallMs?: number },
): Promise<LatencyResult> {
  await resetWorkers(q, true);
  const created = new Map<string, number>();
  const completions = new Completions(q);
  try {
    for (let i = 0; i < jobs; i++) {
      const t0 = epochMs();
      created.set(await q.create(i), t0);
      await completions.until(i + 1, stallMs);
      await Bun.sleep(gapMs);
    }
  } finally {
    completions.close();
  }
  const reports = await collect(q);
  return { offerLatencyMs: summarize(latencies(created, reports)) };
}

/**
 * Open loop: creates jobs at a fixed rate whether or not earlier ones finished (as independent
 * clients would), then waits for every completion. Offer latency here is what a client sees at
 * that load, without the self-inflicted queueing of a closed loop that saturates the queue.
 */
export async function pacedPhase(
  q: QueueUnderTest,
  { jobs, perSecond, stallMs = 60_000 }: { jobs: number; perSecond: number; stallMs?: number },
): Promise<ThroughputResult> {
  return loadedPhase(q, jobs, stallMs, async (created, start) => {
    const creates: Promise<void>[] = [];
    for (let i = 0; i < jobs; i++) {
      const due = start + (i * 1000) / perSecond;
      const wait = due - epochMs();
      if (wait > 1) await Bun.sleep(wait);
      const t0 = epochMs();
      creates.push(q.create(i).then((id) => void created.set(id, t0)));
    }
    await Promise.all(creates);
  });
}
