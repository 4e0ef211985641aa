import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { create, equals } from "@bufbuild/protobuf";
import { ModelSourceSchema, type ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import {
  ENGINE_NAMES,
  ROLE_NAMES,
  SAMPLING_METHODS,
  checkModelSourceJson,
  modelSourceFromJson,
  modelSourceToJsonText,
  modelSourceToJsonValue,
  parseModelSourceJson,
  sharedModelSourceFromStored,
  validateModelSource,
  InvalidModelSourceError,
  type ModelSourceJson,
} from "../../contract/index.js";

const SHA = "a".repeat(64);
const valid = (): Record<string, unknown> => ({
  engine: "sd-cpp",
  files: [
    { role: "diffusion-model", url: "https://huggingface.co/x/resolve/main/z.gguf", filename: "z.gguf", approxBytes: 2_700_000_000, sha256: SHA },
    { role: "text-encoder", url: "https://example.com/te.gguf", filename: "te.gguf" },
    { role: "vae", url: "http://example.com/ae.safetensors", filename: "ae.safetensors" },
  ],
  cliDefaults: { cfgScale: 1.0, steps: 8, width: 1024, height: 1024, samplingMethod: "euler" },
});

/** Returns the single issue a bad input gets, so each rule's message is pinned. */
function onlyIssue(mutate: (s: any) => void) {
  const s = valid();
  mutate(s);
  const r = checkModelSourceJson(s);
  if (r.ok) throw new Error("expected the source to be refused");
  return r.issues;
}

describe("ModelSource validation rules", () => {
  test("the design note's example is valid and keeps its shape", () => {
    const r = checkModelSourceJson(valid());
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).toEqual(valid() as ModelSourceJson);
  });

  const urlCases: Array<[string, string]> = [
    ["file:///etc/passwd", "must use http: or https:, not file:"],
    ["ftp://example.com/a", "must use http: or https:, not ftp:"],
    ["data:text/plain,hi", "must use http: or https:, not data:"],
    ["javascript:alert(1)", "must use http: or https:, not javascript:"],
    ["not a url", "must be an absolute http: or https: URL"],
    ["https://user:pw@example.com/a", "must not carry credentials"],
    [`https://example.com/${"a".repeat(5000)}`, "must be at most 4096 characters"],
  ];
  for (const [url, message] of urlCases) {
    test(`url ${url.slice(0, 30)} is refused`, () => {
      const issues = onlyIssue((s) => (s.files[1].url = url));
      expect(issues).toHaveLength(1);
      expect(issues[0]!.path).toBe("files[1].url");
      expect(issues[0]!.message).toContain(message);
      expect(issues[0]!.message).toContain("(got ");
    });
  }

  const nameCases: Array<[string, string]> = [
    ["../etc/passwd", "without / or \\"],
    ["a/b.gguf", "without / or \\"],
    ["a\\b.gguf", "without / or \\"],
    ["..", "must not contain .."],
    ["x..y", "must not contain .."],
    ["a\u0000b", "NUL or control characters"],
    ["a\nb", "NUL or control characters"],
    ["", "must not be empty"],
    ["é".repeat(128), "at most 255 bytes"],
  ];
  for (const [name, message] of nameCases) {
    test(`filename ${JSON.stringify(name).slice(0, 30)} is refused`, () => {
      const issues = onlyIssue((s) => (s.files[2].filename = name));
      expect(issues[0]!.path).toBe("files[2].filename");
      expect(issues[0]!.message).toContain(message);
    });
  }

  test("a 255-byte filename is accepted", () => {
    const s = valid() as any;
    s.files[2].filename = "a".repeat(251) + ".bin";
    expect(checkModelSourceJson(s).ok).toBe(true);
  });

  test("filenames are unique within a source", () => {
    const issues = onlyIssue((s) => (s.files[2].filename = "z.gguf"));
    expect(issues).toEqual([{ path: "files[2].filename", message: 'duplicates files[0].filename (got "z.gguf")' }]);
  });

  test("sha256 must be 64 hex digits and is normalised to lower case", () => {
    expect(onlyIssue((s) => (s.files[0].sha256 = "abc"))[0]).toEqual({
      path: "files[0].sha256",
      message: 'must be 64 hex digits (got "abc")',
    });
    expect(onlyIssue((s) => (s.files[0].sha256 = "g".repeat(64)))[0]!.path).toBe("files[0].sha256");
    const s = valid() as any;
    s.files[0].sha256 = "ABCDEF".repeat(10) + "ABCD";
    const r = checkModelSourceJson(s);
    expect(r.ok && r.value.files[0]!.sha256).toBe("abcdef".repeat(10) + "abcd");
  });

  test("approxBytes is a non-negative integer", () => {
    expect(onlyIssue((s) => (s.files[0].approxBytes = -1))[0]!.path).toBe("files[0].approxBytes");
    expect(onlyIssue((s) => (s.files[0].approxBytes = 1.5))[0]!.message).toContain("(got 1.5)");
    expect(onlyIssue((s) => (s.files[0].approxBytes = "12"))[0]!.path).toBe("files[0].approxBytes");
  });

  test("vramBytes: a positive integer of bytes, and none for synthetic", () => {
    expect(checkModelSourceJson({ ...valid(), vramBytes: 8 * 1024 ** 3 }).ok).toBe(true);
    for (const bad of [0, -1, 1.5, "8G", Number.MAX_SAFE_INTEGER + 2]) {
      const issues = onlyIssue((s) => (s.vramBytes = bad));
      expect([...new Set(issues.map((i) => i.path))]).toEqual(["vramBytes"]);
    }
    const r = checkModelSourceJson({ engine: "synthetic", files: [], vramBytes: 1024 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toEqual([{ path: "vramBytes", message: "synthetic runs on no GPU: leave vramBytes out" }]);
  });

  test("roles and engines are the wire names", () => {
    expect(onlyIssue((s) => (s.files[0].role = "unet"))[0]!.message).toContain('(got "unet")');
    expect(onlyIssue((s) => (s.engine = "comfy"))[0]).toMatchObject({ path: "engine" });
  });

  test("sd-cpp needs a model or a diffusion-model file", () => {
    const issues = onlyIssue((s) => (s.files = s.files.slice(1)));
    expect(issues).toEqual([{ path: "files", message: "sd-cpp needs a model or a diffusion-model file" }]);
    const s = valid() as any;
    s.files = [{ role: "model", url: "https://e.com/m.safetensors", filename: "m.safetensors" }];
    expect(checkModelSourceJson(s).ok).toBe(true);
  });

  test("llama-cpp needs exactly one model file", () => {
    const one = { role: "model", url: "https://e.com/q.gguf", filename: "q.gguf" };
    const llama = (files: unknown[]) => checkModelSourceJson({ engine: "llama-cpp", files, cliDefaults: {} });
    expect(llama([one]).ok).toBe(true);
    const none = llama([]);
    expect(!none.ok && none.issues[0]!.message).toBe("llama-cpp needs exactly one model file (got 0)");
    const two = llama([one, { ...one, filename: "r.gguf" }]);
    expect(!two.ok && two.issues[0]!.message).toBe("llama-cpp needs exactly one model file (got 2)");
  });

  test("synthetic takes no files", () => {
    const r = checkModelSourceJson({ engine: "synthetic", files: [valid().files as never][0], cliDefaults: {} });
    expect(!r.ok && r.issues[0]!.message).toBe("synthetic takes no files (got 3)");
    expect(checkModelSourceJson({ engine: "synthetic", files: [], cliDefaults: {} }).ok).toBe(true);
  });

  test("steps, width and height are positive and bounded; sides are multiples of 8", () => {
    expect(onlyIssue((s) => (s.cliDefaults.steps = 0))[0]!.path).toBe("cliDefaults.steps");
    expect(onlyIssue((s) => (s.cliDefaults.steps = 1001))[0]!.message).toContain("(got 1001)");
    expect(onlyIssue((s) => (s.cliDefaults.width = 1000 + 4))[0]!.message).toBe("must be a multiple of 8 (got 1004)");
    expect(onlyIssue((s) => (s.cliDefaults.height = 8200))[0]!.path).toBe("cliDefaults.height");
    expect(onlyIssue((s) => (s.cliDefaults.width = -8))[0]!.path).toBe("cliDefaults.width");
    expect(onlyIssue((s) => (s.cliDefaults.cfgScale = -1))[0]!.path).toBe("cliDefaults.cfgScale");
  });

  test("samplingMethod is one of sd-cli's names", () => {
    const issue = onlyIssue((s) => (s.cliDefaults.samplingMethod = "euler-a"))[0]!;
    expect(issue.path).toBe("cliDefaults.samplingMethod");
    expect(issue.message).toContain('(got "euler-a")');
    for (const m of SAMPLING_METHODS) {
      const s = valid() as any;
      s.cliDefaults.samplingMethod = m;
      expect(checkModelSourceJson(s).ok).toBe(true);
    }
  });

  test("unknown fields are named", () => {
    expect(onlyIssue((s) => (s.files[0].aproxBytes = 1))[0]).toEqual({
      path: "files[0]",
      message: 'unknown field "aproxBytes"',
    });
  });

  test("a proto source with an unspecified engine or role is refused by validateModelSource, naming the proto values to send", () => {
    const source = create(ModelSourceSchema, {
      engine: 0,
      files: [{ role: 99 as ModelFileRole, filename: "a.gguf", url: "http://127.0.0.1:9/a" }],
    });
    expect(() => validateModelSource(source)).toThrow(InvalidModelSourceError);
    try {
      validateModelSource(source);
    } catch (e) {
      expect((e as InvalidModelSourceError).issues).toEqual([
        {
          path: "source.engine",
          message: 'must be one of MODEL_ENGINE_SD_CPP ("sd-cpp"), MODEL_ENGINE_LLAMA_CPP ("llama-cpp"), MODEL_ENGINE_SYNTHETIC ("synthetic"); got MODEL_ENGINE_UNSPECIFIED',
        },
        {
          path: "source.files[0].role",
          message:
            'must be one of MODEL_FILE_ROLE_DIFFUSION_MODEL ("diffusion-model"), MODEL_FILE_ROLE_TEXT_ENCODER ("text-encoder"), MODEL_FILE_ROLE_VAE ("vae"), MODEL_FILE_ROLE_LORA ("lora"), MODEL_FILE_ROLE_MODEL ("model"), MODEL_FILE_ROLE_CLIP_L ("clip-l"), MODEL_FILE_ROLE_CLIP_G ("clip-g"), MODEL_FILE_ROLE_T5XXL ("t5xxl"), MODEL_FILE_ROLE_LLM_VISION ("llm-vision"), MODEL_FILE_ROLE_TAESD ("taesd"), MODEL_FILE_ROLE_HIGH_NOISE_DIFFUSION_MODEL ("high-noise-diffusion-model"); got 99',
        },
      ]);
    }
    expect(() => validateModelSource(undefined)).toThrow("source: is required");
  });
});

describe("parseModelSourceJson", () => {
  const refused = [
    null,
    undefined,
    "",
    "   ",
    "null",
    "{",
    "[]",
    "42",
    '"sd-cpp"',
    "{}",
    '{"engine":"sd-cpp"}',
    // An old shape: the worker-side registry keyed by model name.
    '{"model":"z-image-turbo-q4_k_m.gguf","engine":"sdcpp"}',
    '{"engine":"sd-cpp","files":[{"role":"vae","url":"file:///x","filename":"x"}],"cliDefaults":{}}',
    '{"engine":"synthetic","files":[],"cliDefaults":{"steps":-1}}',
  ];
  for (const text of refused) {
    test(`returns undefined and does not throw for ${JSON.stringify(text)}, also when read again or shared`, () => {
      expect(parseModelSourceJson(text as string)).toBeUndefined();
      expect(parseModelSourceJson(text as string)).toBeUndefined();
      expect(sharedModelSourceFromStored(text as string)).toBeUndefined();
    });
  }

  test("returns the proto message for valid text", () => {
    const source = parseModelSourceJson(JSON.stringify(valid()));
    expect(source?.files).toHaveLength(3);
    expect(source?.files[0]?.approxBytes).toBe(2_700_000_000n);
    expect(source?.cliDefaults?.samplingMethod).toBe("euler");
  });

  test("a text read again gets a message of its own, equal and unaffected by changes to an earlier one", () => {
    const text = JSON.stringify(valid());
    const first = parseModelSourceJson(text)!;
    const second = parseModelSourceJson(text)!;
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    first.files[0]!.filename = "changed.gguf";
    first.cliDefaults!.steps = 99;
    expect(parseModelSourceJson(text)).toEqual(second);
  });

  test("sharedModelSourceFromStored is one message per text, equal to what parseModelSourceJson reads", () => {
    const text = JSON.stringify(valid());
    expect(sharedModelSourceFromStored(text)).toBe(sharedModelSourceFromStored(text)!);
    expect(sharedModelSourceFromStored(text)).toEqual(parseModelSourceJson(text)!);
  });

  test("a source without cliDefaults reads with empty defaults", () => {
    expect(parseModelSourceJson('{"engine":"synthetic","files":[]}')?.cliDefaults).toBeDefined();
  });
});

const sourceArb: fc.Arbitrary<ModelSourceJson> = fc
  .record({
    engine: fc.constantFrom(...ENGINE_NAMES),
    files: fc.uniqueArray(
      fc.record(
        {
          role: fc.constantFrom(...ROLE_NAMES),
          url: fc.webUrl({ validSchemes: ["http", "https"] }).filter((u) => u.length < 4096 && !/@/.test(u)),
          filename: fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,40}$/).filter((n) => !n.includes("..")),
          approxBytes: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
          loraWeight: fc.double({ min: -10, max: 10, noNaN: true }),
        },
        { requiredKeys: ["role", "url", "filename"] },
      ),
      { selector: (f) => f.filename, maxLength: 5 },
    ),
    cliDefaults: fc.record(
      {
        cfgScale: fc.double({ min: 0, max: 100, noNaN: true }),
        steps: fc.integer({ min: 1, max: 1000 }),
        width: fc.integer({ min: 1, max: 1024 }).map((n) => n * 8),
        height: fc.integer({ min: 1, max: 1024 }).map((n) => n * 8),
        samplingMethod: fc.constantFrom(...SAMPLING_METHODS),
      },
      { requiredKeys: [] },
    ),
    vramBytes: fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
  })
  .map(({ vramBytes, ...rest }) => (vramBytes === undefined || rest.engine === "synthetic" ? rest : { ...rest, vramBytes }))
  .map((s) => {
    // Shape the files so each engine's file rule holds.
    if (s.engine === "synthetic") return { ...s, files: [] };
    const first = { role: "model" as const, url: "https://example.com/m.gguf", filename: "m-main.gguf" };
    if (s.engine === "llama-cpp") return { ...s, files: [first] };
    // sd-cpp: each role but lora at most once (repeats become loras), a high-noise model with its diffusion-model.
    const seen = new Set<string>(["model"]);
    const files = s.files.map((f) => {
      const role = seen.has(f.role) && f.role !== "lora" ? ("lora" as const) : f.role;
      seen.add(role);
      const { loraWeight, ...rest } = f;
      return role === "lora" ? { ...rest, role, ...(loraWeight === undefined ? {} : { loraWeight }) } : { ...rest, role };
    });
    const highNoise = files.find((f) => f.role === "high-noise-diffusion-model");
    if (highNoise && !seen.has("diffusion-model")) highNoise.role = "diffusion-model";
    return { ...s, files: [first, ...files] };
  });

describe("file roles and LoRA weights", () => {
  const file = (role: string, filename: string, extra: Record<string, unknown> = {}) => ({ role, url: `https://example.com/${filename}`, filename, ...extra });
  const check = (engine: string, files: unknown[]) => checkModelSourceJson({ engine, files });
  const messages = (r: ReturnType<typeof check>) => (r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`));

  test("one source per sd-cpp family takes sd-cli's roles", () => {
    const families: Record<string, unknown[]> = {
      "SD 1.5 (one checkpoint)": [file("model", "v1-5.safetensors")],
      "SDXL (separate encoders)": [file("diffusion-model", "sdxl.gguf"), file("clip-l", "clip_l.safetensors"), file("clip-g", "clip_g.safetensors"), file("vae", "sdxl_vae.safetensors")],
      "SD3": [file("model", "sd3.safetensors"), file("clip-l", "clip_l.safetensors"), file("clip-g", "clip_g.safetensors"), file("t5xxl", "t5xxl.safetensors")],
      "FLUX.1": [file("diffusion-model", "flux1-dev.gguf"), file("clip-l", "clip_l.safetensors"), file("t5xxl", "t5xxl.safetensors"), file("vae", "ae.safetensors"), file("lora", "style.safetensors", { loraWeight: 0.7 })],
      "Qwen-Image edit": [file("diffusion-model", "qwen-image-edit.gguf"), file("text-encoder", "qwen2.5-vl.gguf"), file("llm-vision", "mmproj.gguf"), file("vae", "qwen_vae.safetensors")],
      "Wan 2.2": [file("diffusion-model", "wan-low.gguf"), file("high-noise-diffusion-model", "wan-high.gguf"), file("t5xxl", "umt5.gguf"), file("vae", "wan_vae.safetensors")],
      "Z-Image with TAESD": [file("diffusion-model", "z.gguf"), file("text-encoder", "qwen3.gguf"), file("vae", "ae.safetensors"), file("taesd", "taef1.safetensors")],
    };
    for (const [family, files] of Object.entries(families)) expect([family, messages(check("sd-cpp", files))]).toEqual([family, []]);
  });

  test("sd-cpp takes each role but lora once, and a high-noise model with its diffusion-model", () => {
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf"), file("vae", "v1.st"), file("vae", "v2.st")]))).toEqual(["files: sd-cpp takes at most one vae file (got 2)"]);
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf"), file("lora", "l1.st"), file("lora", "l2.st")]))).toEqual([]);
    expect(messages(check("sd-cpp", [file("model", "a.gguf"), file("high-noise-diffusion-model", "h.gguf")]))).toEqual([
      "files: a high-noise-diffusion-model needs its diffusion-model (the low-noise expert) too",
    ]);
  });

  test("llama-cpp takes one model file and nothing else", () => {
    expect(messages(check("llama-cpp", [file("model", "m.gguf"), file("vae", "v.st")]))).toEqual(["files[1].role: llama-cpp takes model files only (got vae)"]);
  });

  test("loraWeight: lora files only, from -10 to 10; lora names a tag can write", () => {
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf", { loraWeight: 1 })]))).toEqual(["files[0].loraWeight: is for lora files only (this file is diffusion-model)"]);
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf"), file("lora", "l.st", { loraWeight: 10.5 })]))[0]).toContain("files[1].loraWeight:");
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf"), file("lora", "l.st", { loraWeight: -10 })]))).toEqual([]);
    expect(messages(check("sd-cpp", [file("diffusion-model", "a.gguf"), file("lora", "a:b.st")]))[0]).toContain("a lora file name must not contain : or >");
  });
});

describe("wire JSON and proto convert losslessly", () => {
  test("JSON -> proto -> JSON is the identity on valid sources", () => {
    fc.assert(
      fc.property(sourceArb, (json) => {
        const checked = checkModelSourceJson(json);
        if (!checked.ok) throw new Error(JSON.stringify(checked.issues));
        const back = checkModelSourceJson(modelSourceToJsonValue(modelSourceFromJson(checked.value)));
        expect(back.ok && back.value).toEqual(checked.value);
      }),
      { numRuns: 300 },
    );
  });

  test("proto -> stored text -> proto is the identity on valid sources", () => {
    fc.assert(
      fc.property(sourceArb, (json) => {
        const proto = modelSourceFromJson(json);
        const parsed = parseModelSourceJson(modelSourceToJsonText(proto));
        expect(parsed).toBeDefined();
        expect(equals(ModelSourceSchema, parsed!, proto)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
