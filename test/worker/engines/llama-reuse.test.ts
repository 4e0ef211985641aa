import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { LlamaServerEngine } from "../../../worker/engines/llama-server-engine.js";
import { realEngines } from "../../helpers/real-engines.js";
import { llamaSource, request, textTask } from "./helpers.js";

const engines = realEngines();

describe.skipIf(!engines)("a warm real llama-server, job after job", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "llama-reuse-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("streamed chats one after another all succeed: no connection llama-server closed is reused", async () => {
    const e = engines!;
    const engine = new LlamaServerEngine({ binary: e.llamaServer, idleMs: 60_000, healthIntervalMs: 20 });
    try {
      const model = e.model("tiny-llama.gguf");
      for (let i = 0; i < 4; i++) {
        const req = request({
          task: textTask({ messages: [{ role: "user", content: `question ${i}` }], maxTokens: 8, seed: 1n }),
          source: llamaSource(model.name),
          files: [{ role: ModelFileRole.MODEL, filename: model.name, path: model.path }],
          workDir: dir,
        });
        // Before the fix the second run failed: "failed the request: ECONNRESET" (a crash, retried).
        const [output] = await engine.run(req);
        expect(output!.mimeType).toBe("application/json");
      }
    } finally {
      await engine.close();
    }
  }, 60_000);
});
