import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { syntheticImage } from "../../worker/engines/synthetic.js";
import { PROTOCOLS, healthStatus, makeStateJobs, tablesDigest, transportFor, type StateJobs } from "./abuse-studio.js";
import { rpcCases, type RpcCase } from "./rpc-cases.js";

const HOOK_TIMEOUT_MS = 30_000;

let t: TestStudio;
let states: StateJobs;
let cases: RpcCase[] = [];

/**
 * Bad requests to every service over Connect JSON, Connect binary, gRPC-Web and gRPC: each gets the
 * right code and a message naming the field and the value; after each protocol's batch the studio
 * still serves and no row changed. The cases are built at load time (bun needs the test list then),
 * from the job ids the beforeAll makes, which is why `states` is filled through a promise.
 */
let ready: () => void;
const statesReady = new Promise<void>((r) => (ready = r));

beforeAll(async () => {
  t = await startTestStudio({ leaseTtlMs: 600_000, heartbeatIntervalMs: 10_000 });
  states = await makeStateJobs(t, syntheticImage({ prompt: "x", negativePrompt: "", seed: 1n, batchCount: 1 } as never, { width: 8, height: 8 }, 0));
  cases = rpcCases(states);
  ready();
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await t?.stop();
}, HOOK_TIMEOUT_MS);

/** Calls one case's RPC (reading a server stream to its first error) and returns the error it got. */
async function callCase(c: RpcCase, protocol: (typeof PROTOCOLS)[number]): Promise<ConnectError | undefined> {
  const client = createClient(c.service, transportFor(t, protocol)) as unknown as Record<string, (req: unknown, opts?: unknown) => unknown>;
  const abort = new AbortController();
  try {
    const result = client[c.method]!(c.request, { signal: abort.signal, timeoutMs: 10_000 });
    if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
      for await (const _ of result as AsyncIterable<unknown>) break;
    } else await result;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  } finally {
    abort.abort();
  }
}

// The number of cases is fixed by rpcCases' shape; build a placeholder list to register tests by index.
const CASE_COUNT = rpcCases({ queued: "q", cancelled: "c", running: { jobId: "r", leaseId: "rl" }, succeeded: { jobId: "s", leaseId: "sl" }, failed: { jobId: "f", leaseId: "fl" } }).length;

test("the suite has at least 150 bad-input cases", () => {
  expect(CASE_COUNT * PROTOCOLS.length).toBeGreaterThanOrEqual(150);
});

for (const protocol of PROTOCOLS) {
  describe(`bad requests over ${protocol}`, () => {
    let before: ReturnType<typeof tablesDigest>;
    test("before the batch: the studio serves", async () => {
      await statesReady;
      before = tablesDigest(t.dataDir);
      expect(await healthStatus(t.url)).toBe("SERVING");
    });
    for (let i = 0; i < CASE_COUNT; i++) {
      test(`case ${i}`, async () => {
        const c = cases[i]!;
        const err = await callCase(c, protocol);
        const got = err ? `${Code[err.code]}: ${err.rawMessage}` : "no error";
        const wanted = `${Code[c.code]}: ${c.mentions.join(" ... ")}`;
        if (!err || err.code !== c.code || !c.mentions.every((m) => err.rawMessage.includes(m)))
          throw new Error(`${c.name} (${c.method}): wanted ${wanted}, got ${got}`);
      });
    }
    test("after the batch: the studio still serves and nothing was written", async () => {
      expect(await healthStatus(t.url)).toBe("SERVING");
      expect(tablesDigest(t.dataDir)).toEqual(before);
    });
  });
}
