import { afterAll, beforeAll, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { JobStatus, TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { startAuthStudio, transportFor } from "./support.js";

/**
 * Issue 16, item 6: a ClaimJob long-poll that was waiting when its token was revoked still handed
 * out the next job. Revoking now ends waiting polls with UNAUTHENTICATED, and the job stays queued.
 */
const ADMIN = `claim-admin-${"c".repeat(32)}`;
let studio: Awaited<ReturnType<typeof startAuthStudio>>;
beforeAll(async () => {
  studio = await startAuthStudio({ adminToken: ADMIN });
});
afterAll(() => studio.stop());

test("a waiting ClaimJob ends with UNAUTHENTICATED when its token is revoked, and the next job is not handed to it", async () => {
  const tokens = createClient(TokenService, transportFor(studio.url, ADMIN));
  const { token, secret } = await tokens.createToken({ name: "poller", role: TokenRole.WORKER });
  const poller = createClient(WorkerService, transportFor(studio.url, secret));
  const other = createClient(WorkerService, transportFor(studio.url, (await tokens.createToken({ name: "other", role: TokenRole.WORKER })).secret));
  const waiting = poller.claimJob({ workerName: "revoked-poller", engines: [ModelEngine.SYNTHETIC], waitMs: 25_000 }).then(
    (r) => (r.claim ? `handed ${r.claim.jobId}` : "no job"),
    (e: unknown) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`,
  );
  // Revoked once the poll has passed auth (it then listens for job events): whether it is already
  // waiting or about to, it must end, never wait on.
  const baseline = studio.ctx.events.listenerCount;
  while (studio.ctx.events.listenerCount === baseline) await Bun.sleep(2);
  await tokens.revokeToken({ id: token!.id });
  expect(await waiting).toBe(`Unauthenticated: token ${token!.id} (poller) was revoked`);
  // Another token's poll waits as before.
  const bystander = await other.claimJob({ workerName: "bystander", engines: [ModelEngine.LLAMA_CPP], waitMs: 200 });
  expect(bystander.claim).toBeUndefined();

  const jobs = createClient(JobService, transportFor(studio.url, ADMIN));
  const { job } = await jobs.createJob({ model: "synthetic", task: create(TaskSchema, { kind: { case: "image", value: { prompt: "not yours" } } }) });
  expect((await jobs.getJob({ jobId: job!.id })).job?.status).toBe(JobStatus.QUEUED);
});
