import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ImageTaskSchema } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { loraTagIssues, readLoraTags } from "../../contract/index.js";

const source = (...loras: string[]) =>
  create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: [
      { role: ModelFileRole.DIFFUSION_MODEL, filename: "dit.gguf", url: "http://x/dit.gguf" },
      ...loras.map((filename) => ({ role: ModelFileRole.LORA, filename, url: `http://x/${filename}` })),
    ],
  });
const issues = (prompt: string, negativePrompt = "", src = source("style.safetensors")) =>
  loraTagIssues(create(ImageTaskSchema, { prompt, negativePrompt }), src);

describe("LoRA tags in prompts", () => {
  test("a tag naming one of the source's lora files, by file name or stem, is read with its weight", () => {
    const src = source("style.safetensors", "ink.gguf");
    const { references, problems } = readLoraTags("a fox <lora:style:0.8> in <lora:ink.gguf:-1.5e0> <lora:|high_noise|style:1>", src);
    expect(problems).toEqual([]);
    expect(references).toEqual([
      { tag: "<lora:style:0.8>", filename: "style.safetensors", weight: 0.8, highNoise: false },
      { tag: "<lora:ink.gguf:-1.5e0>", filename: "ink.gguf", weight: -1.5, highNoise: false },
      { tag: "<lora:|high_noise|style:1>", filename: "style.safetensors", weight: 1, highNoise: true },
    ]);
  });

  // What sd-cli does with these (checked against the real binary): it opens lora-model-dir/NAME
  // (then NAME.gguf, .safetensors, ...), and an absolute NAME as it is.
  const refused: Array<[string, string]> = [
    ["<lora:../../x:1>", `names "../../x", which is not a lora file of the model`],
    ["<lora:/etc/passwd:1>", `names "/etc/passwd", which is not a lora file of the model`],
    ["<lora:../loras/style:1>", `names "../loras/style"`],
    ["<lora:sub/style:1>", `names "sub/style"`],
    ["<lora:other:1>", `names "other", which is not a lora file of the model (the model's lora files: style.safetensors)`],
    ["<lora:Style:1>", `names "Style"`],
    ["<lora:style:abc>", `the weight must be a number from -10 to 10 (got "abc")`],
    ["<lora:style:1abc>", `the weight must be a number from -10 to 10 (got "1abc")`],
    ["<lora:style:11>", `the weight must be a number from -10 to 10 (got "11")`],
    ["<lora:style:inf>", `the weight must be a number`],
    ["<lora:style:1 <lora:../../x:1>", `the weight must be a number`],
    ["<lora:style>", `a LoRA tag must read <lora:NAME:WEIGHT>`],
    ["<lora:", `a LoRA tag must read <lora:NAME:WEIGHT>`],
  ];
  for (const [tag, message] of refused)
    test(`refuses ${tag}`, () => {
      const found = issues(`a fox ${tag}`);
      expect(found).toHaveLength(1);
      expect(found[0]!.path).toBe("task.image.prompt");
      expect(found[0]!.message).toContain(message);
    });

  test("a source without lora files takes no tags at all", () => {
    expect(issues("<lora:style:1>", "", source())[0]!.message).toContain("(the model has no lora files)");
  });

  test("a stem two lora files share names neither", () => {
    const found = issues("<lora:style:1>", "", source("style.gguf", "style.safetensors"));
    expect(found[0]!.message).toContain("could be more than one lora file");
    expect(issues("<lora:style.gguf:1>", "", source("style.gguf", "style.safetensors"))).toEqual([]);
  });

  test("the negative prompt holds no LoRA tag, not even a valid one (sd-cli reads LoRAs from the prompt only)", () => {
    for (const negative of ["<lora:../../x:1>", "<lora:style:1>", "blurry <lora:"])
      expect(issues("a fox", negative)).toEqual([
        { path: "task.image.negative_prompt", message: "must not hold a LoRA tag (<lora:...>): LoRAs are applied from the prompt only" },
      ]);
  });

  test("text that only looks like a tag to people is left alone", () => {
    expect(issues("a <LORA:x:1> sign, <lora without colon>, <b>bold</b>")).toEqual([]);
  });
});
