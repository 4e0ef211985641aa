import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createClient } from "@connectrpc/connect";
import { createHash, randomBytes } from "node:crypto";
import type { Offer } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob } from "../dispatch/fixtures.js";
import { h2Transport, SimWorker, type Protocol } from "../dispatch/sim-worker.js";

/**
 * The transport behind the one-port choice (server/http/listener.ts): many
 * concurrent bidi sessions over h2c each uploading MB-sized outputs in 1 MiB
 * chunks, for the Connect protocol and for gRPC, while the studio pushes offers
 * down the same streams. Every output must arrive byte-exact and every job commit once.
 */
const SESSIONS = 10;
const JOBS_PER_SESSION = 2;
const OUTPUTS_PER_JOB = 2;
const OUTPUT_BYTES = 1_500_000;

let t: TestStudio;
beforeEach(async () => {
  t = await startTestStudio();
});
afterEach(() => t.stop());

describe.each(["connect", "grpc"] as Protocol[])("stress over %s", (protocol) => {
  test(`${SESSIONS} sessions x ${JOBS_PER_SESSION} jobs x ${OUTPUTS_PER_JOB} outputs of ${OUTPUT_BYTES} bytes`, async () => {
    const total = SESSIONS * JOBS_PER_SESSION;
    const jobs = createClient(JobService, t.connectTransport());
    const workers = await Promise.all(
      Array.from({ length: SESSIONS }, (_, i) =>
        SimWorker.connect(h2Transport(t.url, protocol), { name: `s${i}`, slots: 1, engines: [ModelEngine.SYNTHETIC] }),
      ),
    );
    const expected = new Map<string, string[]>(); // job id → output digests
    let completed = 0;
    let allDone!: () => void;
    const finished = new Promise<void>((r) => (allDone = r));

    const runs = workers.map(async (w) => {
      for (;;) {
        let offer: Offer;
        try {
          offer = await w.nextOffer();
        } catch {
          return;
        }
        const digests: string[] = [];
        for (let i = 0; i < OUTPUTS_PER_JOB; i++) digests.push(w.upload(offer, i, randomBytes(OUTPUT_BYTES), { mimeType: "image/png" }));
        expected.set(offer.jobId, digests);
        const receipt = await w.complete(offer, OUTPUTS_PER_JOB);
        expect(receipt).toMatchObject({ ok: true });
        if (++completed === total) allDone();
      }
    });
    await Promise.all(Array.from({ length: total }, () => createJob(jobs, "synthetic", { batchCount: OUTPUTS_PER_JOB })));
    await finished;
    await Promise.all(workers.map((w) => w.close()));
    await Promise.all(runs);
    for (const w of workers) expect(w.error).toBeUndefined();

    const rows = sqliteOf(t.studio).query("SELECT id, status, attempts, outputs FROM graphicsJobs").all() as {
      id: string;
      status: string;
      attempts: number;
      outputs: string;
    }[];
    expect(rows).toHaveLength(total);
    for (const row of rows) {
      expect(row.status).toBe("SUCCEEDED");
      expect(row.attempts).toBe(1);
      const outs = JSON.parse(row.outputs) as { sha256: string; sizeBytes: string }[];
      expect(outs.map((o) => o.sha256)).toEqual(expected.get(row.id)!);
      expect(outs.every((o) => Number(o.sizeBytes) === OUTPUT_BYTES)).toBe(true);
    }
    // Read one output back over the same protocol and check its bytes.
    const sample = rows[0]!;
    const reader = createClient(JobService, h2Transport(t.url, protocol));
    const hash = createHash("sha256");
    for await (const m of reader.getJobOutput({ jobId: sample.id, index: 1 })) hash.update(m.chunk);
    expect(hash.digest("hex")).toBe(expected.get(sample.id)![1]!);
  }, 60_000);
});
