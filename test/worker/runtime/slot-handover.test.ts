import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { OfferSchema, TaskSchema, type JobProgress } from "../../../gen/studio/v1/job_pb.js";
import { ModelEngine, ModelSourceSchema } from "../../../gen/studio/v1/model_pb.js";
import { WelcomeSchema, type SessionRequest } from "../../../gen/studio/v1/worker_service_pb.js";
import { EngineError } from "../../../worker/engines/engine-error.js";
import type { Engine, EngineRunRequest } from "../../../worker/engines/types.js";
import type { Downloads } from "../../../worker/runtime/ports.js";
import { WorkerRuntime } from "../../../worker/runtime/worker-runtime.js";
import type { LiveSession } from "../../../worker/session/session-client.js";

const dir = mkdtempSync(join(tmpdir(), "slot-handover-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An engine that runs until cancelled and then takes a while to stop, like sd-cli being killed. */
class SlowToStopEngine implements Engine {
  readonly kind = ModelEngine.SYNTHETIC;
  readonly started: string[] = [];
  private waiters: Array<() => void> = [];
  constructor(private readonly stopDelayMs: number) {}

  run(req: EngineRunRequest): Promise<never> {
    this.started.push(req.jobId);
    for (const w of this.waiters.splice(0)) w();
    return new Promise((_, reject) =>
      req.signal.addEventListener("abort", () => setTimeout(() => reject(new EngineError("cancelled", "cancelled")), this.stopDelayMs), { once: true }),
    );
  }

  async close() {}

  /** Resolves once `n` runs have started. */
  async startedCount(n: number): Promise<void> {
    while (this.started.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }
}

const noDownloads: Downloads = {
  ensureAll: async () => [],
  cachedDigests: () => [],
  cachedUrls: () => [],
  touchCached: async () => {},
};

// Found by the chaos run: a worker continued after SIGSTOP read a backlog of cancel, offer, cancel,
// offer for one job. The second offer waited in the slot handover for the first run to stop; its own
// cancel put its run among the stopping ones, so it waited on itself, and the third offer waited on
// it: the third lease was heartbeated for ever and the job stayed OFFERED until the worker restarted.
test("a job cancelled while it waits for a stopping job's slot does not block the next offer", async () => {
  const engine = new SlowToStopEngine(150);
  const posted: SessionRequest["message"][] = [];
  const session: LiveSession = {
    id: 1,
    welcome: create(WelcomeSchema, { heartbeatIntervalMs: 1000, leaseTtlMs: 5000 }),
    send: async (m) => void posted.push(m as SessionRequest["message"]),
    post: (m) => (posted.push(m as SessionRequest["message"]), true),
    postOrMerge: (m) => (posted.push(m as SessionRequest["message"]), true),
    isClosed: false,
  };
  const runtime = new WorkerRuntime({
    name: "handover",
    version: "test",
    slots: 1,
    engines: { kinds: [ModelEngine.SYNTHETIC], route: () => engine },
    downloads: noDownloads,
    view: { started() {}, progress(_id: string, _p: JobProgress) {}, finished() {} },
    logger: pino({ level: "silent" }),
    workRoot: join(dir, "work"),
    jobTimeoutMs: 30_000,
    receiptTimeoutMs: 500,
  });
  runtime.attach({ session, waitForSession: async () => session });
  const offer = (leaseId: string, attempt: number) =>
    runtime.message(
      {
        case: "offer",
        value: create(OfferSchema, {
          jobId: "job-1",
          leaseId,
          attempt,
          model: "m",
          task: create(TaskSchema, { kind: { case: "image", value: { prompt: "p" } } }),
          modelSource: create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC }),
        }),
      },
      session,
    );
  const cancel = (leaseId: string) => runtime.message({ case: "cancel", value: { jobId: "job-1", leaseId, reason: "the job is now QUEUED" } as never }, session);

  offer("lease-1", 1);
  await engine.startedCount(1);
  // The backlog a resumed worker reads in one go.
  cancel("lease-1");
  offer("lease-2", 2);
  cancel("lease-2");
  offer("lease-3", 3);

  await engine.startedCount(2);
  expect(engine.started).toEqual(["job-1", "job-1"]);
  expect(runtime.leaseIds()).toEqual(["lease-3"]);
  cancel("lease-3");
  await runtime.whenIdle();
  expect(runtime.leaseIds()).toEqual([]);
}, 10_000);
