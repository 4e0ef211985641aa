import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { startStudio, type Studio } from "../../server/app.js";
import { createLogger } from "../../server/log.js";
import { SimWorker, h2Transport } from "../dispatch/sim-worker.js";

/**
 * The studio's info log as an operator reads it: one line per job event (queued, offered, succeeded,
 * failed with its error, cancelled), each with the job, model, worker and time since creation, and
 * no line per RPC (those are debug).
 */
let dir: string;
let studio: Studio;
const lines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "studio-joblog-"));
  const logger = createLogger("info", { destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  studio = await startStudio({ host: "127.0.0.1", port: 0, dataDir: dir, logLevel: "info" }, { logger });
});
afterAll(async () => {
  await studio.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ofJob = (id: string) => lines.filter((l) => l.jobId === id && l.module === "jobs");

describe("job event log", () => {
  test("one info line per job event with worker, attempts, duration and error; RPCs stay below info", async () => {
    const jobs = createClient(JobService, createConnectTransport({ baseUrl: studio.url, httpVersion: "1.1" }));
    const w = await SimWorker.connect(h2Transport(studio.url), { name: "log-sim", engines: [ModelEngine.SYNTHETIC] });
    try {
      const image = (prompt: string) => ({ kind: { case: "image" as const, value: { prompt } } });
      const ok = (await jobs.createJob({ model: "synthetic", task: image("fine") })).job!;
      const offer = await w.nextOffer();
      expect(offer.jobId).toBe(ok.id);
      w.upload(offer, 0, new Uint8Array([1, 2, 3]), { mimeType: "image/png" });
      expect(await w.complete(offer)).toMatchObject({ ok: true });

      const bad = (await jobs.createJob({ model: "synthetic", task: image("doomed"), maxAttempts: 2 })).job!;
      const first = await w.nextOffer();
      await w.fail(first, "CUDA out of memory", true);
      const second = await w.nextOffer();
      await w.fail(second, "CUDA out of memory again", true);

      const cancelled = (await jobs.createJob({ model: "synthetic", task: image("never mind") })).job!;
      await w.nextOffer();
      await jobs.cancelJob({ jobId: cancelled.id });
      await w.nextCancel();

      const base = { module: "jobs", service: "studio", model: "synthetic" };
      const okLines = ofJob(ok.id);
      expect(okLines.map((l) => l.msg)).toEqual(["job queued", "job offered", "job succeeded"]);
      expect(okLines[1]).toMatchObject({ ...base, worker: "log-sim", attempt: 1 });
      expect(okLines[2]).toMatchObject({ ...base, worker: "log-sim", attempts: 1 });
      expect(typeof okLines[2]!.ms).toBe("number");

      const badLines = ofJob(bad.id);
      expect(badLines.map((l) => l.msg)).toEqual(["job queued", "job offered", "job queued again", "job offered", "job failed"]);
      expect(badLines[2]).toMatchObject({ attempts: 1, error: "CUDA out of memory" });
      expect(badLines[4]).toMatchObject({ ...base, attempts: 2, error: "CUDA out of memory again", worker: "log-sim" });

      expect(ofJob(cancelled.id).map((l) => l.msg)).toEqual(["job queued", "job offered", "job cancelled"]);

      expect(lines.filter((l) => l.msg === "rpc")).toEqual([]);
    } finally {
      await w.close();
    }
  }, 20_000);
});
