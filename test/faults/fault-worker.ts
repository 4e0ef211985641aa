import { join, resolve } from "node:path";
import pino from "pino";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { JobProgress } from "../../gen/studio/v1/job_pb.js";
import type { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import type { Engine } from "../../worker/engines/types.js";
import { DownloadManager, type DownloadManagerOptions } from "../../worker/download/index.js";
import { MultiEngine } from "../../worker/engines/multi-engine.js";
import { SdCliEngine } from "../../worker/engines/sd-cli-engine.js";
import type { JobOutcome, JobView } from "../../worker/runtime/ports.js";
import { WorkerRuntime } from "../../worker/runtime/worker-runtime.js";
import { Backoff } from "../../contract/backoff.js";
import { SessionClient } from "../../worker/session/session-client.js";

/** The fake sd-cli the faults' worker runs. */
export const SD_CLI_FIXTURE = resolve(import.meta.dir, "../fixtures/sd-cli");

/** Records how jobs end on the worker's side. */
class EndsView implements JobView {
  readonly ends = new Map<string, { outcome: JobOutcome; message?: string }>();
  started() {}
  progress(_jobId: string, _p: JobProgress) {}
  finished(jobId: string, outcome: JobOutcome, message?: string) {
    this.ends.set(jobId, { outcome, message });
  }
}

/** What the worker runs and what its hello claims (a hello may lie: claims beyond its engines). */
export interface WorkerOptions {
  name?: string;
  engines?: Engine[];
  claims?: ModelEngine[];
  /** The sd-cli program (default: the fixture). */
  sdCli?: string;
}

/** A running in-process worker: the real runtime, session client, download manager and sd-cli engine. */
export interface FaultWorker {
  view: EndsView;
  stop(): Promise<void>;
}

/**
 * Starts the worker the way worker/main.ts wires it, in-process so that the download manager's
 * stall timeout and retry pacing can be short (the compiled binary has no flag for them).
 */
export function startFaultWorker(
  studioUrl: string,
  dir: string,
  downloads: Partial<DownloadManagerOptions> & { cacheDir: string },
  opts: WorkerOptions = {},
): FaultWorker {
  const silent = pino({ level: "silent" });
  const engines = new MultiEngine(opts.engines ?? [new SdCliEngine({ binary: opts.sdCli ?? SD_CLI_FIXTURE })]);
  const view = new EndsView();
  const runtime = new WorkerRuntime({
    name: opts.name ?? "faults",
    version: "test",
    slots: 1,
    engines: { kinds: opts.claims ?? engines.kinds, route: (m, s) => engines.route(m, s) },
    downloads: new DownloadManager({ maxRetries: 2, retryBaseDelayMs: 20, stallTimeoutMs: 400, ...downloads }),
    view,
    logger: silent,
    workRoot: join(dir, "work"),
    jobTimeoutMs: 30_000,
  });
  const client = new SessionClient({
    transport: createConnectTransport({ baseUrl: studioUrl, httpVersion: "2" }),
    handlers: runtime,
    logger: silent,
    backoff: new Backoff({ initialMs: 50, maxMs: 200 }),
  });
  runtime.attach(client);
  void runtime.loadCache().then(() => client.run());
  return {
    view,
    async stop() {
      runtime.stopNow();
      await client.stop(500);
      await engines.close();
    },
  };
}
