import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { MAX_CACHED_DIGESTS } from "../../server/dispatch/worker-registry.js";
import { SimWorker, barrier, h2Transport } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Issue 16, item 7: a worker's cache_update took any string as a digest (7 MiB strings, up to 4,096
 * per session: the studio grew by 300 MB and one ListWorkers answer was 66 MB). It is now checked as
 * hello is: 64 hex digits, http(s) URLs within the limits, bounded lists, before anything is kept.
 */
let t: TestStudio;
beforeAll(async () => {
  t = await startTestStudio();
});
afterAll(() => t.stop());

const hex = (n: number) => n.toString(16).padStart(64, "0");

async function sendUpdate(update: { addedSha256?: string[]; removedSha256?: string[]; addedUrls?: string[]; removedUrls?: string[] }) {
  const w = await SimWorker.connect(h2Transport(t.url), { name: `cache-${Math.random().toString(36).slice(2)}` });
  w.send({ case: "cacheUpdate", value: { addedSha256: [], removedSha256: [], addedUrls: [], removedUrls: [], ...update } });
  return w;
}

describe("cache_update is checked like hello", () => {
  test("a 7 MiB string as a digest ends the session with INVALID_ARGUMENT and is not kept", async () => {
    const w = await sendUpdate({ addedSha256: ["a".repeat(7 * 1024 * 1024)] });
    await w.done;
    expect(ConnectError.from(w.error).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(w.error).rawMessage).toContain("cache_update: added_sha256 must hold lower-case sha256 hex digests");
    const listed = await t.client(WorkerService).listWorkers({});
    expect(JSON.stringify(listed).length).toBeLessThan(100_000);
  });

  test("too many entries in one list, or a non-http URL, are refused", async () => {
    const many = await sendUpdate({ removedSha256: Array.from({ length: MAX_CACHED_DIGESTS + 1 }, (_, i) => hex(i)) });
    await many.done;
    expect(ConnectError.from(many.error).rawMessage).toContain(`removed_sha256 may list at most ${MAX_CACHED_DIGESTS}`);
    const badUrl = await sendUpdate({ addedSha256: [hex(1)], addedUrls: ["file:///etc/passwd"] });
    await badUrl.done;
    expect(ConnectError.from(badUrl.error).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(badUrl.error).rawMessage).toContain("cache_update: added_urls");
  });

  test("a valid update is kept", async () => {
    const w = await sendUpdate({ addedSha256: [hex(42)], addedUrls: ["https://example.com/a.gguf"] });
    try {
      // Messages are handled in order: once a later message is answered, the update was applied.
      await barrier(w);
      const { workers } = await t.client(WorkerService).listWorkers({});
      expect(workers.flatMap((x) => x.cachedSha256)).toContain(hex(42));
      expect(w.ended).toBe(false);
    } finally {
      await w.close();
    }
  });
});
