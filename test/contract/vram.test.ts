import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { VRAM_ESTIMATE, describeVramNeed, estimateFromFiles, vramNeedOf } from "../../contract/index.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const file = (name: string, approxBytes?: number) => ({
  role: ModelFileRole.MODEL,
  url: `https://example.com/${name}`,
  filename: name,
  approxBytes: approxBytes === undefined ? undefined : BigInt(approxBytes),
});

describe("the GPU memory a source needs", () => {
  test("a stated vramBytes is used as it is", () => {
    const source = create(ModelSourceSchema, { engine: ModelEngine.LLAMA_CPP, files: [file("m.gguf", 4 * GiB)], vramBytes: BigInt(6 * GiB) });
    expect(vramNeedOf(source)).toEqual({ bytes: 6 * GiB, estimated: false });
  });

  test("otherwise the files' approxBytes, plus a fifth and 512 MiB, marked as an estimate", () => {
    const source = create(ModelSourceSchema, {
      engine: ModelEngine.SD_CPP,
      files: [file("dit.gguf", 5 * GiB), file("te.gguf", 2 * GiB), file("vae.safetensors")],
    });
    const need = vramNeedOf(source)!;
    expect(need.estimated).toBe(true);
    expect(need.bytes).toBe(7 * GiB + Math.ceil((7 * GiB) / 5) + 512 * MiB);
    expect(need.bytes).toBe(estimateFromFiles(7 * GiB));
    expect(VRAM_ESTIMATE.fixedBytes).toBe(512 * MiB);
    expect(describeVramNeed(need)).toBe("8.9 GiB of GPU memory (estimated from the files' approxBytes plus 20% and 512 MiB)");
  });

  test("nothing for synthetic, nor when no file states its size", () => {
    expect(vramNeedOf(create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC }))).toBeUndefined();
    expect(vramNeedOf(create(ModelSourceSchema, { engine: ModelEngine.LLAMA_CPP, files: [file("m.gguf")] }))).toBeUndefined();
    expect(vramNeedOf(undefined)).toBeUndefined();
  });
});
