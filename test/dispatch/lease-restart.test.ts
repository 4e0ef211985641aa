import { afterEach, describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, rowOf } from "./fixtures.js";

const started: TestStudio[] = [];
afterEach(async () => {
  for (const t of started.splice(0)) await t.stop();
});

const digest = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");
const output = (index: number, text: string) => {
  const data = new TextEncoder().encode(text);
  return { index, mimeType: "image/png", data, sha256: digest(data) };
};

/*
 * The output count is kept in memory with the lease when it is taken; a lease taken
 * before a restart has no such record, and the count then comes from the stored task.
 */
describe("a lease taken before a restart", () => {
  test("its complete is still checked against the task's output count, then commits", async () => {
    const first = await startTestStudio();
    started.push(first);
    const job = await createJob(first.client(JobService), "synthetic", { batchCount: 2 });
    const { claim } = await createClient(WorkerService, first.connectTransport()).claimJob({
      workerName: "poller-1",
      engines: [ModelEngine.SYNTHETIC],
      waitMs: 1000,
    });
    expect(claim?.jobId).toBe(job.id);
    await first.stop({ keepDataDir: true });
    started.pop();

    const second = await startTestStudio({ dataDir: first.dataDir }, { ownsDataDir: true });
    started.push(second);
    const poller = createClient(WorkerService, second.connectTransport());
    const lease = { jobId: job.id, leaseId: claim!.leaseId };
    const short = await poller.completeJob({ ...lease, outputs: [output(0, "a")] }).then(
      () => undefined,
      (err) => ConnectError.from(err),
    );
    expect(short?.code).toBe(Code.InvalidArgument);
    expect(short?.rawMessage).toContain("the task asks for 2");
    await poller.completeJob({ ...lease, outputs: [output(0, "a"), output(1, "b")] });
    expect(rowOf(second, job.id).status).toBe("SUCCEEDED");
    await second.stop();
    started.pop();
    rmSync(first.dataDir, { recursive: true, force: true });
  });
});
