import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { freePort } from "../../../worker/engines/free-port.js";
import pino from "pino";
import { TokenRole, TokenService } from "../../../gen/studio/v1/token_service_pb.js";
import { WorkerHelloSchema, WorkerService } from "../../../gen/studio/v1/worker_service_pb.js";
import { ModelEngine } from "../../../gen/studio/v1/model_pb.js";
import { Backoff } from "../../../contract/backoff.js";
import { SessionClient, SessionRefusedError, type LiveSession, type SessionHandlers } from "../../../worker/session/session-client.js";
import { startTestStudio, type TestStudio } from "../../helpers/test-studio.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;

const ADMIN = "admin-token-for-session-client-tests-0123456789";
const silent = pino({ level: "silent" });
const studios: TestStudio[] = [];
const clients: SessionClient[] = [];

/** Handlers that record what the client did; the session client is what is under test. */
function recorder(name: string) {
  const events: string[] = [];
  let welcomed: (s: LiveSession) => void = () => {};
  let changed: () => void = () => {};
  const push = (e: string) => {
    events.push(e);
    changed();
  };
  const handlers: SessionHandlers & {
    events: string[];
    nextWelcome(): Promise<LiveSession>;
    until(check: (events: string[]) => boolean): Promise<void>;
  } = {
    events,
    async until(check) {
      while (!check(events)) await new Promise<void>((r) => (changed = r));
    },
    hello: () => create(WorkerHelloSchema, { name, version: "test", engines: [ModelEngine.SYNTHETIC], slots: 1 }),
    leaseIds: () => [],
    welcome: (s) => {
      push(`welcome ${s.id}`);
      welcomed(s);
    },
    message: (m) => push(`message ${m.case}`),
    closed: (s, err) => push(`closed ${s?.id ?? "-"} ${err ? "error" : "clean"}`),
    nextWelcome: () => new Promise((r) => (welcomed = r)),
  };
  return handlers;
}

function client(url: string, handlers: SessionHandlers, token?: string) {
  const c = new SessionClient({
    transport: createConnectTransport({ baseUrl: url, httpVersion: "2" }),
    handlers,
    logger: silent,
    token,
    backoff: new Backoff({ initialMs: 20, maxMs: 100 }),
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.stop(200);
  for (const s of studios.splice(0)) await s.stop();
}, HOOK_TIMEOUT_MS);

describe("SessionClient", () => {
  test("sends the token as a bearer header: a worker token is welcomed, a wrong one refused for good", async () => {
    const t = await startTestStudio({ adminToken: ADMIN });
    studios.push(t);
    const admin = t.client(TokenService, t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } }));
    const { secret } = await admin.createToken({ name: "gpu-1", role: TokenRole.WORKER });

    const good = recorder("gpu-1");
    const ok = client(t.url, good, secret);
    const running = ok.run();
    const session = await good.nextWelcome();
    expect(session.welcome.workerId).not.toBe("");
    const { workers } = await t.client(WorkerService, t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } })).listWorkers({});
    expect(workers.map((w) => w.name)).toContain("gpu-1");
    await ok.stop();
    await running;

    const bad = recorder("gpu-2");
    const refused = await client(t.url, bad, "not-a-real-token").run().catch((e) => e);
    expect(refused).toBeInstanceOf(SessionRefusedError);
    expect((refused as SessionRefusedError).connectCode).toBe(Code.Unauthenticated);
    expect(bad.events).toEqual(["closed - error"]);
  }, TEST_TIMEOUT_MS);

  test("keeps retrying with backoff until the studio is up, then stays connected", async () => {
    const port = await freePort();
    const handlers = recorder("early-bird");
    const c = client(`http://127.0.0.1:${port}`, handlers);
    const welcomed = handlers.nextWelcome();
    void c.run();
    await handlers.until((events) => events.filter((e) => e.startsWith("closed")).length >= 3);
    const t = await startTestStudio({ port });
    studios.push(t);
    const session = await welcomed;
    expect(c.session).toBe(session);
    expect(handlers.events.at(-1)).toBe(`welcome ${session.id}`);
    expect(session.id).toBeGreaterThan(3);
  }, TEST_TIMEOUT_MS);

  test("with several studio URLs it rotates: a dead one is skipped, and when its studio goes the next one takes over", async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const handlers = recorder("rotator");
    const c = new SessionClient({
      transport: [portA, portB].map((p) => createConnectTransport({ baseUrl: `http://127.0.0.1:${p}`, httpVersion: "2" })),
      servers: [portA, portB].map((p) => `http://127.0.0.1:${p}`),
      handlers,
      logger: silent,
      backoff: new Backoff({ initialMs: 20, maxMs: 100 }),
    });
    clients.push(c);
    const b = await startTestStudio({ port: portB });
    studios.push(b);
    const first = handlers.nextWelcome();
    void c.run();
    await first;
    const listed = async (t: TestStudio) => (await t.client(WorkerService).listWorkers({})).workers.map((w) => w.name);
    expect(await listed(b)).toEqual(["rotator"]);
    const a = await startTestStudio({ port: portA });
    studios.push(a);
    const second = handlers.nextWelcome();
    await b.stop();
    await second;
    expect(await listed(a)).toEqual(["rotator"]);
  }, TEST_TIMEOUT_MS);

  test("stop ends a pending waitForSession instead of leaving it hanging", async () => {
    const handlers = recorder("never-connects");
    const c = client(`http://127.0.0.1:${await freePort()}`, handlers);
    void c.run();
    const pending = c.waitForSession();
    await handlers.until((events) => events.length >= 1);
    await c.stop();
    await expect(pending).rejects.toThrow("the worker is stopping");
  }, TEST_TIMEOUT_MS);

  test("waitForSession hands out the live session, and the next one after a reconnect", async () => {
    const t = await startTestStudio({});
    studios.push(t);
    const handlers = recorder("reconnector");
    const c = client(t.url, handlers);
    void c.run();
    const first = await c.waitForSession();
    const port = t.studio.port;
    await t.stop();
    studios.pop();
    await handlers.until((events) => events.includes(`closed ${first.id} clean`) || events.includes(`closed ${first.id} error`));
    const next = c.waitForSession();
    const t2 = await startTestStudio({ port });
    studios.push(t2);
    const second = await next;
    expect(second.id).toBeGreaterThan(first.id);
    expect(first.isClosed).toBe(true);
    await expect(first.send({ case: "drain", value: {} as never })).rejects.toThrow("closed");
    await c.stop();
    await expect(c.waitForSession()).rejects.toThrow("the worker is stopping");
  }, TEST_TIMEOUT_MS);
});
