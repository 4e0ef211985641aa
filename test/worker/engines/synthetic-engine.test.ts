import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ImageTaskSchema } from "../../../gen/studio/v1/job_pb.js";
import { SyntheticEngine, TEXT_OUTPUT_MIME, pngProblem, syntheticImage, type EngineProgress } from "../../../worker/engines/index.js";
import { imageTask, rejection, request, syntheticSource, textTask } from "./helpers.js";

function ihdrSize(png: Uint8Array): [number, number] {
  const view = new DataView(png.buffer, png.byteOffset);
  return [view.getUint32(16), view.getUint32(20)];
}

describe("syntheticImage", () => {
  const task = create(ImageTaskSchema, { prompt: "a cat", negativePrompt: "dog", seed: 3n });

  test("is a valid PNG of the requested size, the same bytes for the same inputs", () => {
    const png = syntheticImage(task, { width: 48, height: 24 }, 0);
    expect(pngProblem(png)).toBeUndefined();
    expect(ihdrSize(png)).toEqual([48, 24]);
    expect(syntheticImage(task, { width: 48, height: 24 }, 0)).toEqual(png);
  });

  test("changes with the prompt, negative prompt, seed, index and size", () => {
    const base = syntheticImage(task, { width: 16, height: 16 }, 0);
    const variants = [
      syntheticImage(create(ImageTaskSchema, { ...task, prompt: "a cow" }), { width: 16, height: 16 }, 0),
      syntheticImage(create(ImageTaskSchema, { ...task, negativePrompt: "" }), { width: 16, height: 16 }, 0),
      syntheticImage(create(ImageTaskSchema, { ...task, seed: 4n }), { width: 16, height: 16 }, 0),
      syntheticImage(task, { width: 16, height: 16 }, 1),
      syntheticImage(task, { width: 16, height: 24 }, 0),
    ];
    for (const v of variants) expect(v).not.toEqual(base);
  });
});

describe("SyntheticEngine", () => {
  test("an image batch: one PNG per image with the effective size, and step progress", async () => {
    const engine = new SyntheticEngine();
    const task = imageTask({ prompt: "hills", seed: 9n, batchCount: 2, overrides: { width: 40 } });
    const req = request({ task, source: syntheticSource({ width: 32, height: 16, steps: 3 }), files: [], workDir: "/nonexistent" });
    const outputs = await engine.run(req);
    expect(outputs.map((o) => o.mimeType)).toEqual(["image/png", "image/png"]);
    expect(outputs[1]!.data).toEqual(syntheticImage(task.kind.value as never, { width: 40, height: 16 }, 1));
    expect(ihdrSize(outputs[0]!.data)).toEqual([40, 16]);
    expect(req.progress.map((p) => p.step)).toEqual([1, 2, 3, 1, 2, 3]);
  });

  test("a text task returns the llama engine's JSON shape, deterministically", async () => {
    const engine = new SyntheticEngine();
    const run = () => engine.run(request({ task: textTask({ prompt: "say hi", maxTokens: 4 }), source: syntheticSource(), files: [], workDir: "/x" }));
    const [a] = await run();
    const [b] = await run();
    expect(a!.mimeType).toBe(TEXT_OUTPUT_MIME);
    expect(a!.data).toEqual(b!.data);
    const json = JSON.parse(new TextDecoder().decode(a!.data));
    expect(json.finishReason).toBe("length");
    expect(json.usage).toEqual({ promptTokens: 2, completionTokens: 4 });
    expect(json.text.split(" ")).toHaveLength(4);
  });

  test("cancel stops between steps", async () => {
    const engine = new SyntheticEngine({ stepDelayMs: 5 });
    const controller = new AbortController();
    const onProgress = (p: EngineProgress) => {
      if (p.step === 2) controller.abort();
    };
    const req = request({ task: imageTask({ prompt: "x" }), source: syntheticSource({ steps: 10, width: 8, height: 8 }), files: [], workDir: "/x", signal: controller.signal, onProgress });
    const err = await rejection(engine.run(req));
    expect(err.kind).toBe("cancelled");
    expect(req.progress).toHaveLength(2);
  });
});
