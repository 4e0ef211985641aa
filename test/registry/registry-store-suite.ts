import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { InvalidModelSourceError } from "../../contract/model-source.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import type { ModelRegistry } from "../../server/registry/model-registry.js";
import { RegistryError } from "../../server/registry/registry-errors.js";

/** What the shared suite needs from one storage implementation: a freshly migrated (seeded) registry. */
export interface RegistryHarness {
  registry: ModelRegistry;
  close(): Promise<void> | void;
}

const llama = (url = "http://127.0.0.1:9/m.gguf") =>
  create(ModelSourceSchema, {
    engine: ModelEngine.LLAMA_CPP,
    files: [{ role: ModelFileRole.MODEL, url, filename: "m.gguf" }],
  });

async function codeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof RegistryError) return err.code;
    if (err instanceof InvalidModelSourceError) return "invalid_source";
    throw err;
  }
  throw new Error("expected a refusal");
}

/** The registry's rules, run against every store (River's shared driver tests). */
export function exerciseRegistry(name: string, open: () => Promise<RegistryHarness>) {
  describe(`ModelRegistry contract: ${name}`, () => {
    const withRegistry = (fn: (r: ModelRegistry) => Promise<void>) => async () => {
      const h = await open();
      try {
        await fn(h.registry);
      } finally {
        await h.close();
      }
    };

    test(
      "starts with the seed, lists by name, and creates, reads and resolves a model",
      withRegistry(async (r) => {
        expect((await r.list()).map((m) => m.name)).toEqual(["qwen3-0.6b", "synthetic", "z-image-turbo"]);
        const made = await r.create({ name: "tiny", source: llama(), description: "a test model" });
        expect(made).toMatchObject({ name: "tiny", enabled: true, description: "a test model" });
        expect((await r.get("tiny")).source?.files[0]?.url).toBe("http://127.0.0.1:9/m.gguf");
        const resolved = await r.resolve("tiny");
        expect(resolved).toMatchObject({ name: "tiny", engine: "llama-cpp" });
        expect(JSON.parse(resolved.sourceJson).files[0].filename).toBe("m.gguf");
        expect((await r.list()).map((m) => m.name)).toContain("tiny");
      }),
    );

    test(
      "refuses a taken name, a bad name, a bad source and a long description, writing nothing",
      withRegistry(async (r) => {
        expect(await codeOf(() => r.create({ name: "synthetic", source: llama() }))).toBe("model_exists");
        expect(await codeOf(() => r.create({ name: "Bad Name!", source: llama() }))).toBe("invalid_model_name");
        expect(await codeOf(() => r.create({ name: "nofiles", source: llama("ftp://x/y.gguf") }))).toBe("invalid_source");
        expect(await codeOf(() => r.create({ name: "long", source: llama(), description: "x".repeat(5000) }))).toBe("invalid_description");
        expect((await r.list()).map((m) => m.name)).toEqual(["qwen3-0.6b", "synthetic", "z-image-turbo"]);
      }),
    );

    test(
      "update, enable and delete change one row; misses are model_not_found; a disabled model does not resolve",
      withRegistry(async (r) => {
        await r.create({ name: "tiny", source: llama() });
        const before = await r.get("tiny");
        const updated = await r.update("tiny", { source: llama("http://127.0.0.1:9/other.gguf"), description: "now other" });
        expect(updated.description).toBe("now other");
        expect(updated.source?.files[0]?.url).toBe("http://127.0.0.1:9/other.gguf");
        expect(updated.createTime).toEqual(before.createTime);
        expect((await r.resolve("tiny")).sourceJson).toContain("other.gguf");
        expect((await r.setEnabled("tiny", false)).enabled).toBe(false);
        expect(await codeOf(() => r.resolve("tiny"))).toBe("model_disabled");
        expect((await r.list({ enabledOnly: true })).map((m) => m.name)).not.toContain("tiny");
        await r.setEnabled("tiny", true);
        expect((await r.resolve("tiny")).name).toBe("tiny");
        await r.delete("tiny");
        expect(await codeOf(() => r.get("tiny"))).toBe("model_not_found");
        expect(await codeOf(() => r.resolve("tiny"))).toBe("model_not_found");
        expect(await codeOf(() => r.delete("tiny"))).toBe("model_not_found");
        expect(await codeOf(() => r.update("ghost", { description: "x" }))).toBe("model_not_found");
        expect(await codeOf(() => r.setEnabled("ghost", true))).toBe("model_not_found");
      }),
    );

    test(
      "concurrent creates of one name: exactly one wins",
      withRegistry(async (r) => {
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => r.create({ name: "race", source: llama() })));
        expect(results.filter((x) => x.status === "fulfilled")).toHaveLength(1);
        for (const x of results)
          if (x.status === "rejected") expect(x.reason).toBeInstanceOf(RegistryError);
      }),
    );
  });
}
