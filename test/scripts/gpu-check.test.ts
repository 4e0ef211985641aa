import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { modelSourceToJsonValue } from "../../contract/model-source.js";
import { create } from "@bufbuild/protobuf";
import { ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { realEngines } from "../helpers/real-engines.js";
import { startModelServer } from "../helpers/model-server.js";
import { llamaSource, zimageSource } from "../e2e/real-engines-harness.js";
import { GPU_TOOLS_DIR, fakeGpus, nvidiaCard } from "../worker/gpus/fake-gpus.js";

/**
 * scripts/gpu-check.ts is for a machine with a real GPU; here it runs on the stand-in nvidia-smi
 * and the real CPU engines (found on PATH, as on such a machine), with tiny models from a local
 * server, so that the script keeps working: the inventory, the GPUs as the studio lists them, and
 * a text and an image job whose engine processes show in nvidia-smi's process list.
 */
const engines = realEngines();
const REPO = resolve(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "gpu-check-script-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!engines)("scripts/gpu-check.ts", () => {
  test("prints the inventory and the studio's view of the GPUs, runs a text and an image job on the GPU, saves the outputs", async () => {
    const e = engines!;
    const gpus = fakeGpus({ cards: [nvidiaCard("NVIDIA GeForce RTX 4090", 24564, 400)], usage: [{ match: "llama-server", mib: 900 }, { match: "sd-cli", mib: 2100 }] });
    const files = startModelServer((["tiny-llama.gguf", "tiny-zimage-dit.gguf", "tiny-zimage-qwen3.gguf", "tiny-zimage-vae.safetensors"] as const).map((n) => e.model(n)));
    try {
      const write = (name: string, source: Parameters<typeof create<typeof ModelSourceSchema>>[1]) => {
        const path = join(dir, name);
        writeFileSync(path, JSON.stringify(modelSourceToJsonValue(create(ModelSourceSchema, source))));
        return path;
      };
      const image = zimageSource(e, files);
      // Enough steps that sd-cli runs for a few seconds, as a real model does: the script samples the process list.
      image.cliDefaults.steps = 12;
      const out = join(dir, "out");
      const proc = Bun.spawn(
        [process.execPath, join(REPO, "scripts/gpu-check.ts"), "--text-source", write("text.json", llamaSource(e, files, "tiny-llama.gguf")), "--image-source", write("image.json", image), "--out", out],
        {
          env: { PATH: [GPU_TOOLS_DIR, e.dir, process.env.PATH].join(delimiter), HOME: dir, XDG_CACHE_HOME: join(dir, "cache"), ...gpus.env },
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toContain(`GPU 0  NVIDIA GeForce RTX 4090  ${gpus.state.cards[0]!.uuid}  24 GiB free of 24 GiB`);
      expect(stdout).toContain("the studio's ListWorkers:\n  0 NVIDIA GeForce RTX 4090: 24 GiB of 24 GiB free, 0/1 slot busy");
      expect(stdout).toMatch(/engine pid \d+ held up to 900 MiB on the GPU/);
      expect(stdout).toMatch(/engine pid \d+ held up to 2\.1 GiB on the GPU/);
      expect(stdout).toContain("OK: both jobs ran on the GPU.");
      expect(readdirSync(out).map((f) => f.split(".").pop()).sort()).toEqual(["json", "png"]);
    } finally {
      files.stop();
      gpus.cleanup();
    }
  }, 120_000);
});
