import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../../gen/studio/v1/model_pb.js";
import {
  EngineError,
  LlamaServerEngine,
  MultiEngine,
  SdCliEngine,
  SyntheticEngine,
  syntheticImage,
  syntheticText,
  textOutput,
} from "../../../worker/engines/index.js";
import { fakeSdImage } from "../../fixtures/fake-image.js";
import {
  FAKE_LLAMA_SERVER,
  FAKE_SD_CLI,
  imageTask,
  llamaSource,
  rejection,
  request,
  sdSource,
  syntheticSource,
  textTask,
  workDir,
} from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const SD_FILES = [{ role: ModelFileRole.MODEL, filename: "sd-v1-5.safetensors" }];

function caught(fn: () => unknown): EngineError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EngineError) return err;
    throw err;
  }
  throw new Error("expected an EngineError");
}

describe("MultiEngine strict routing", () => {
  test("an offer without a source is no-source, naming the model", () => {
    const multi = new MultiEngine([new SyntheticEngine()]);
    const err = caught(() => multi.route("flux-dev", undefined));
    expect(err.kind).toBe("no-source");
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(`the studio's registry has no model source for model "flux-dev"`);
  });

  test("a synthetic-only worker declines sd-cpp and llama-cpp sources instead of answering them", () => {
    const synthetic = new SyntheticEngine();
    const multi = new MultiEngine([synthetic]);
    expect(multi.kinds).toEqual([ModelEngine.SYNTHETIC]);
    for (const source of [sdSource(SD_FILES), llamaSource("m.gguf")]) {
      const err = caught(() => multi.route("real-model", source));
      expect(err.kind).toBe("unavailable");
      expect(err.message).toContain("this worker has no");
      expect(err.message).toContain("(it has: synthetic)");
    }
    expect(multi.route("demo", syntheticSource())).toBe(synthetic);
    const unknown = create(ModelSourceSchema, { engine: ModelEngine.UNSPECIFIED });
    expect(caught(() => multi.route("odd", unknown)).kind).toBe("unavailable");
  });

  test("two engines of one kind are a configuration error", () => {
    expect(() => new MultiEngine([new SyntheticEngine(), new SyntheticEngine()])).toThrow("two engines for synthetic");
  });

  test("regression: a synthetic-capable worker answers sd-cpp and llama-cpp jobs with the real programs' output, never synthetic bytes", async () => {
    const wd = await workDir([...SD_FILES, { role: ModelFileRole.MODEL, filename: "llm.gguf" }]);
    const sd = new SdCliEngine({ binary: FAKE_SD_CLI });
    const llama = new LlamaServerEngine({ binary: FAKE_LLAMA_SERVER, idleMs: 60_000, healthIntervalMs: 20 });
    const multi = new MultiEngine([new SyntheticEngine(), sd, llama]);
    cleanups.push(async () => {
      await multi.close();
      await wd.cleanup();
    });
    const source = sdSource(SD_FILES, { width: 64, height: 64, steps: 2 });
    const task = imageTask({ prompt: "a lighthouse", seed: 5n });
    const engine = multi.route("sd15", source);
    expect(engine).toBe(sd);
    const [image] = await engine.run(request({ task, source, files: [wd.files[0]!], workDir: wd.dir }));
    expect(image!.data).toEqual(fakeSdImage({ prompt: "a lighthouse", seed: "5", width: 64, height: 64, index: 0 }));
    expect(image!.data).not.toEqual(syntheticImage(task.kind.value as never, { width: 64, height: 64 }, 0));

    const textSource = llamaSource("llm.gguf");
    const text = textTask({ prompt: "hello" });
    const llm = multi.route("qwen", textSource);
    expect(llm).toBe(llama);
    const [out] = await llm.run(request({ task: text, source: textSource, files: [wd.files[1]!], workDir: wd.dir }));
    expect(out!.data).not.toEqual(textOutput(syntheticText(text.kind.value as never)).data);
  });

  test("the synthetic engine itself refuses a non-synthetic source", async () => {
    const wd = await workDir(SD_FILES);
    cleanups.push(wd.cleanup);
    const source = sdSource(SD_FILES);
    const err = await rejection(new SyntheticEngine().run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir })));
    expect(err.kind).toBe("unavailable");
  });
});
