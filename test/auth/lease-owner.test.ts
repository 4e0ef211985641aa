import { afterAll, beforeAll, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { SimWorker } from "../dispatch/sim-worker.js";
import { clientFor, startAuthStudio } from "./support.js";

const ADMIN = `lease-admin-${"a".repeat(32)}`;
let studio: Awaited<ReturnType<typeof startAuthStudio>>;
const secrets: Record<"a" | "b" | "client", { secret: string; id: string }> = {} as never;

/** HTTP/2 with the token, as a real worker connects. */
function workerTransport(secret: string): Transport {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
  return createConnectTransport({ baseUrl: studio.url, httpVersion: "2", useBinaryFormat: true, interceptors: [auth] });
}

const code = (p: Promise<unknown>) => p.then(() => "ok", (e) => Code[ConnectError.from(e).code]);
const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "owner test" } } });

beforeAll(async () => {
  studio = await startAuthStudio({ adminToken: ADMIN });
  const admin = clientFor(TokenService, studio.url, ADMIN);
  for (const [key, role] of [["a", TokenRole.WORKER], ["b", TokenRole.WORKER], ["client", TokenRole.CLIENT]] as const) {
    const r = await admin.createToken({ name: `token ${key}`, role });
    secrets[key] = { secret: r.secret, id: r.token!.id };
  }
});
afterAll(() => studio.stop());

test("a worker may not act on another worker's lease: PERMISSION_DENIED on the polling API and refused receipts on a session", async () => {
  const jobs = clientFor(JobService, studio.url, secrets.client.secret);
  const a = await SimWorker.connect(workerTransport(secrets.a.secret), { name: "worker-a", engines: [ModelEngine.SYNTHETIC] });
  const { job } = await jobs.createJob({ model: "synthetic", task });
  const offer = await a.nextOffer();
  expect(offer.jobId).toBe(job!.id);
  const lease = { jobId: offer.jobId, leaseId: offer.leaseId };

  const b = createClient(WorkerService, workerTransport(secrets.b.secret));
  expect(await code(b.reportProgress({ ...lease, progress: { step: 1, steps: 4 } }))).toBe("PermissionDenied");
  expect(await code(b.failJob({ ...lease, error: "not mine", retryable: false }))).toBe("PermissionDenied");
  expect(await code(b.completeJob({ ...lease, outputs: [] }))).toBe("PermissionDenied");
  expect(await code(b.heartbeat({ leaseIds: [lease.leaseId] }))).toBe("PermissionDenied");

  // Naming A's lease in hello does not hand it over: it comes back as lost.
  const bSession = await SimWorker.connect(workerTransport(secrets.b.secret), {
    name: "worker-b",
    engines: [ModelEngine.SYNTHETIC],
    leaseIds: [lease.leaseId],
  });
  expect(bSession.welcome.keptLeaseIds).toEqual([]);
  expect(bSession.welcome.lostLeaseIds).toEqual([lease.leaseId]);
  bSession.send({ case: "accept", value: lease });
  expect(await bSession.receipt(lease.jobId, lease.leaseId)).toMatchObject({ ok: false, code: "permission_denied" });
  expect(await bSession.fail(lease, "stolen")).toMatchObject({ ok: false, code: "permission_denied" });

  // The owner is unaffected and finishes the job.
  a.send({ case: "accept", value: lease });
  expect(await a.receipt(lease.jobId, lease.leaseId)).toMatchObject({ ok: true });
  a.upload(lease, 0, new TextEncoder().encode("mine"), { mimeType: "image/png" });
  expect(await a.complete(lease)).toMatchObject({ ok: true });
  expect((await jobs.getJob({ jobId: job!.id })).job?.workerName).toBe("worker-a");
  await a.close();
  await bSession.close();
});

test("revoking a worker token ends its open session with UNAUTHENTICATED and drops it from ListWorkers", async () => {
  const admin = clientFor(TokenService, studio.url, ADMIN);
  const { secret, token } = await admin.createToken({ name: "doomed worker", role: TokenRole.WORKER });
  const w = await SimWorker.connect(workerTransport(secret), { name: "doomed", engines: [ModelEngine.SYNTHETIC] });
  const list = clientFor(WorkerService, studio.url, ADMIN);
  expect((await list.listWorkers({})).workers.map((x) => x.name)).toContain("doomed");
  await admin.revokeToken({ id: token!.id });
  await w.done;
  expect(ConnectError.from(w.error).code).toBe(Code.Unauthenticated);
  expect((await list.listWorkers({})).workers.map((x) => x.name)).not.toContain("doomed");
  const again = createClient(WorkerService, workerTransport(secret));
  expect(await code(again.heartbeat({ leaseIds: [] }))).toBe("Unauthenticated");
});
