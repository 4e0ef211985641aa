import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { SimWorker, h2Transport } from "../dispatch/sim-worker.js";
import { createJob } from "../dispatch/fixtures.js";
import { filesUnder } from "../chaos/invariants.js";

const HOOK_TIMEOUT_MS = 30_000;
let t: TestStudio;
let w: SimWorker;

beforeAll(async () => {
  t = await startTestStudio({ leaseTtlMs: 60_000 });
  w = await SimWorker.connect(h2Transport(t.url), { name: "uploader" });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await w?.close().catch(() => {});
  await t?.stop();
}, HOOK_TIMEOUT_MS);

const stored = () => filesUnder(join(t.dataDir, "outputs")).filter((p) => !p.startsWith(".tmp/"));

// Found by the chaos run (orphan files in the output store): the store used to keep each output as soon
// as its upload was verified, before JobComplete, so a worker token could fill the studio's disk by
// uploading full-size outputs and failing its jobs. Verified uploads now wait staged per lease and enter
// the store only in the complete's commit (test/dispatch/output-staging.test.ts covers expiry, cancel,
// decline and the startup sweep).
test("outputs uploaded for a job that then fails are not kept in the store", async () => {
  const job = await createJob(t.client(JobService));
  const offer = await w.nextOffer();
  expect(offer.jobId).toBe(job.id);
  const bytes = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
  w.upload(offer, 0, bytes);
  expect((await w.fail(offer, "uploaded, then gave up")).ok).toBe(true);
  const sha = createHash("sha256").update(bytes).digest("hex");
  expect(stored()).not.toContain(`${sha.slice(0, 2)}/${sha}`);
});
