import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService, type WatchWorkersResponse } from "../../gen/studio/v1/worker_service_pb.js";
import { SimWorker, h2Transport } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

let t: TestStudio;
beforeAll(async () => {
  t = await startTestStudio();
});
afterAll(async () => {
  await t.stop();
});

/** Reads a stream message by message, each awaited by the test. */
function reader(stream: AsyncIterable<WatchWorkersResponse>) {
  const it = stream[Symbol.asyncIterator]();
  return async (): Promise<WatchWorkersResponse> => {
    const r = await it.next();
    if (r.done) throw new Error("the stream ended");
    return r.value;
  };
}

describe("WatchWorkers", () => {
  test("a snapshot, then a worker connecting, taking a job, finishing it and leaving", async () => {
    const abort = new AbortController();
    const next = reader(t.client(WorkerService).watchWorkers({}, { signal: abort.signal }));
    const first = await next();
    expect(first).toMatchObject({ snapshot: true, workers: [], removedWorkerIds: [] });

    const w = await SimWorker.connect(h2Transport(t.url), { name: "watched", engines: [ModelEngine.SYNTHETIC], slots: 2 });
    const joined = await next();
    expect(joined.snapshot).toBe(false);
    expect(joined.workers.map((x) => [x.name, x.slots, x.slotsInUse])).toEqual([["watched", 2, 0]]);
    const id = joined.workers[0]!.workerId;

    const { job } = await t.client(JobService).createJob({ model: "synthetic", task: { kind: { case: "image", value: { prompt: "x" } } } });
    const offer = await w.nextOffer();
    let busy = await next();
    // Heartbeats may come in between: wait for the change that shows the job.
    while (busy.workers[0]?.jobIds.length !== 1) busy = await next();
    expect(busy.workers[0]).toMatchObject({ workerId: id, slotsInUse: 1, jobIds: [job!.id] });

    w.upload(offer, 0, new Uint8Array([1]), { mimeType: "image/png" });
    await w.complete(offer);
    let idle = await next();
    while (idle.workers[0]?.slotsInUse !== 0) idle = await next();
    expect(idle.workers[0]!.jobIds).toEqual([]);

    await w.close();
    let gone = await next();
    while (gone.removedWorkerIds.length === 0) gone = await next();
    expect(gone.removedWorkerIds).toEqual([id]);
    abort.abort();
  }, 20_000);

  test("a second watcher gets the workers as they are now in its snapshot", async () => {
    const w = await SimWorker.connect(h2Transport(t.url), { name: "already-here", engines: [ModelEngine.SYNTHETIC] });
    const abort = new AbortController();
    try {
      const next = reader(t.client(WorkerService).watchWorkers({}, { signal: abort.signal }));
      const snap = await next();
      expect(snap.snapshot).toBe(true);
      expect(snap.workers.map((x) => x.name)).toEqual(["already-here"]);
    } finally {
      abort.abort();
      await w.close();
    }
  }, 20_000);
});

describe("WhoAmI", () => {
  test("open studio: admin and open; with tokens each role sees itself, no token is UNAUTHENTICATED", async () => {
    expect(await t.client(TokenService).whoAmI({})).toMatchObject({ role: TokenRole.ADMIN, open: true, tokenId: "", tokenName: "open" });

    const admin = `whoami-admin-${"w".repeat(32)}`;
    const locked = await startTestStudio({ adminToken: admin });
    try {
      const as = (secret?: string) => {
        const auth: Interceptor = (next) => async (req) => {
          if (secret) req.header.set("authorization", `Bearer ${secret}`);
          return next(req);
        };
        return locked.client(TokenService, createConnectTransport({ baseUrl: locked.url, httpVersion: "1.1", interceptors: [auth] }));
      };
      const client = await as(admin).createToken({ name: "laptop", role: TokenRole.CLIENT });
      const worker = await as(admin).createToken({ name: "gpu-1", role: TokenRole.WORKER });
      expect(await as(admin).whoAmI({})).toMatchObject({ role: TokenRole.ADMIN, open: false });
      expect(await as(client.secret).whoAmI({})).toMatchObject({ role: TokenRole.CLIENT, tokenName: "laptop", tokenId: client.token!.id, open: false });
      expect(await as(worker.secret).whoAmI({})).toMatchObject({ role: TokenRole.WORKER, tokenName: "gpu-1" });
      const refused = await as().whoAmI({}).catch((e) => ConnectError.from(e).code);
      expect(refused).toBe(Code.Unauthenticated);
    } finally {
      await locked.stop();
    }
  });
});
