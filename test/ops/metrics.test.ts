import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import type { DispatchModule } from "../../server/dispatch/index.js";
import { SimWorker } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const ADMIN = `ops-admin-${"m".repeat(32)}`;
const TTL = 10_000;
let t: TestStudio;
let clock = 1_800_000_000_000;
let client: string;
let worker: string;

function h2(secret: string): Transport {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
  return createConnectTransport({ baseUrl: t.url, httpVersion: "2", useBinaryFormat: true, interceptors: [auth] });
}

/** The value of one sample in Prometheus text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(",") : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return undefined;
}

async function scrape(): Promise<string> {
  const res = await fetch(`${t.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "metrics" } } });
const dispatchOf = () => t.studio.modules.find((m) => m.name === "dispatch") as DispatchModule;

beforeAll(async () => {
  t = await startTestStudio({ adminToken: ADMIN, leaseTtlMs: TTL, heartbeatIntervalMs: 200 }, { now: () => clock });
  const admin = createClient(TokenService, h2(ADMIN));
  client = (await admin.createToken({ name: "metrics client", role: TokenRole.CLIENT })).secret;
  worker = (await admin.createToken({ name: "metrics worker", role: TokenRole.WORKER })).secret;
});
afterAll(() => t.stop());

describe("/metrics moves as jobs flow", () => {
  test("queue depth, oldest age, offers, workers and slots, durations, output bytes, lease expiries and retries", async () => {
    const jobs = createClient(JobService, h2(client));
    let text = await scrape();
    expect(sample(text, "studio_queue_depth", { model: "synthetic" })).toBeUndefined();
    expect(sample(text, "studio_jobs", { status: "QUEUED" })).toBe(0);
    expect(sample(text, "studio_workers_connected")).toBe(0);

    const created = [];
    for (let i = 0; i < 3; i++) created.push((await jobs.createJob({ model: "synthetic", task })).job!);
    clock += 5_000;
    text = await scrape();
    expect(sample(text, "studio_queue_depth", { model: "synthetic" })).toBe(3);
    expect(sample(text, "studio_jobs", { status: "QUEUED" })).toBe(3);
    expect(sample(text, "studio_queue_oldest_age_seconds", { model: "synthetic" })).toBe(5);

    // A worker with two slots takes two jobs.
    const w = await SimWorker.connect(h2(worker), { name: "meter", slots: 2, engines: [ModelEngine.SYNTHETIC] });
    const first = await w.nextOffer();
    const second = await w.nextOffer();
    text = await scrape();
    expect(sample(text, "studio_offers_total")).toBe(2);
    expect(sample(text, "studio_workers_connected")).toBe(1);
    expect(sample(text, "studio_worker_slots_free")).toBe(0);
    expect(sample(text, "studio_queue_depth", { model: "synthetic" })).toBe(1);

    // One completes with 5 output bytes after 3 s.
    w.send({ case: "accept", value: { jobId: first.jobId, leaseId: first.leaseId } });
    await w.receipt(first.jobId, first.leaseId);
    clock += 3_000;
    w.upload(first, 0, new TextEncoder().encode("12345"), { mimeType: "image/png" });
    expect(await w.complete(first)).toMatchObject({ ok: true });
    text = await scrape();
    expect(sample(text, "studio_jobs", { status: "SUCCEEDED" })).toBe(1);
    expect(sample(text, "studio_output_bytes_total")).toBe(5);
    expect(sample(text, "studio_job_duration_seconds_count", { status: "SUCCEEDED" })).toBe(1);
    expect(sample(text, "studio_job_duration_seconds_sum", { status: "SUCCEEDED" })).toBe(8);

    // The other lease runs out without a heartbeat: an expiry and a retry.
    await w.close();
    clock += TTL + 1;
    const expired = await dispatchOf().reaper.runOnce();
    // The slot the completed job freed took the third job: both open leases expire.
    expect(expired.map((e) => e.row.id)).toContain(second.jobId);
    expect(expired.length).toBe(2);
    text = await scrape();
    expect(sample(text, "studio_offers_total")).toBe(3);
    expect(sample(text, "studio_lease_expiries_total")).toBe(2);
    expect(sample(text, "studio_job_retries_total")).toBe(2);
    expect(sample(text, "studio_workers_connected")).toBe(0);
    expect(sample(text, "studio_queue_depth", { model: "synthetic" })).toBe(2);
    expect(created.length).toBe(3);
  });

  test("phase durations and download bytes come from the progress workers report", async () => {
    const jobs = createClient(JobService, h2(client));
    await jobs.createJob({ model: "synthetic", task });
    const w = await SimWorker.connect(h2(worker), { name: "phases", slots: 1, engines: [ModelEngine.SYNTHETIC] });
    const offer = await w.nextOffer();
    const lease = { jobId: offer.jobId, leaseId: offer.leaseId };
    w.send({ case: "accept", value: lease });
    await w.receipt(lease.jobId, lease.leaseId);
    const before = sample(await scrape(), "studio_worker_download_bytes_total") ?? 0;
    // Each job change is a chance for the metric to have moved: wait on the event bus, not the clock.
    let wake: (() => void) | undefined;
    let changes = 0;
    const off = t.studio.ctx.events.subscribe((c) => {
      if (c.jobId !== lease.jobId) return;
      changes++;
      wake?.();
    });
    const waitFor = async (check: (text: string) => boolean) => {
      for (let seen = changes; ; seen = changes) {
        if (check(await scrape())) return;
        if (changes === seen) await new Promise<void>((r) => (wake = r));
      }
    };
    w.send({ case: "progress", value: { ...lease, progress: { phase: 1, bytesDone: 1000n, bytesTotal: 4000n } } });
    await waitFor((text) => sample(text, "studio_worker_download_bytes_total") === before + 1000);
    clock += 4_000;
    w.send({ case: "progress", value: { ...lease, progress: { phase: 3, step: 1, steps: 4 } } });
    await waitFor((text) => (sample(text, "studio_job_phase_duration_seconds_count", { phase: "downloading" }) ?? 0) >= 1);
    expect(sample(await scrape(), "studio_job_phase_duration_seconds_sum", { phase: "downloading" })).toBe(4);
    off();
    await w.close();
  });
});
