import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeTextOutput, roleFromName, type RoleName } from "../../../contract/index.js";
import type { ImageTask } from "../../../gen/studio/v1/job_pb.js";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { LlamaServerEngine, SdCliEngine, sdCliArgs, type EngineFile } from "../../../worker/engines/index.js";
import { realEngines } from "../../helpers/real-engines.js";
import { imageTask, llamaSource, memoryLogger, rejection, request, sdSource, textTask } from "./helpers.js";

/**
 * The engines against the real sd-cli and llama-server (STUDIO_TEST_ENGINES): what the compiled
 * worker's end-to-end tests cannot see through the studio's throttled progress, and the argv of
 * one model source per family checked against the real sd-cli's parser.
 */
const engines = realEngines();
const TIMEOUT_MS = 60_000;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "real-engine-units-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!engines)("SdCliEngine with the real sd-cli", () => {
  const e = engines!;
  const zimageFiles = (): EngineFile[] => [
    { role: ModelFileRole.DIFFUSION_MODEL, filename: "tiny-zimage-dit.gguf", path: e.model("tiny-zimage-dit.gguf").path },
    { role: ModelFileRole.TEXT_ENCODER, filename: "tiny-zimage-qwen3.gguf", path: e.model("tiny-zimage-qwen3.gguf").path },
    { role: ModelFileRole.VAE, filename: "tiny-zimage-vae.safetensors", path: e.model("tiny-zimage-vae.safetensors").path },
  ];
  const zimage = (loras: string[] = []) =>
    sdSource([...zimageFiles(), ...loras.map((filename) => ({ role: ModelFileRole.LORA, filename }))], { cfgScale: 1, steps: 2, width: 64, height: 64, samplingMethod: "euler" });

  test("weights load after 'generating image': progress says loading until the first sampling step, running while sampling and decoding", async () => {
    const engine = new SdCliEngine({ binary: e.sdCli });
    const workDir = mkdtempSync(join(dir, "sd-"));
    const req = request({ task: imageTask({ prompt: "a red fox", seed: 1n }), source: zimage(), files: zimageFiles(), workDir });
    const outputs = await engine.run(req);
    expect(outputs).toHaveLength(1);
    const firstStep = req.progress.findIndex((p) => p.step !== undefined);
    const generating = req.progress.findIndex((p) => p.message?.startsWith("generating image: 1/1"));
    expect(generating).toBeGreaterThanOrEqual(0);
    expect(firstStep).toBeGreaterThan(generating);
    // Before the fix, "generating image" switched to running while the DiT's weights were still loading.
    expect(req.progress.slice(0, firstStep).every((p) => p.phase === "loading")).toBe(true);
    expect(req.progress.slice(generating, firstStep).some((p) => /loading weights \d+\/\d+/.test(p.message ?? ""))).toBe(true);
    expect(req.progress.filter((p) => p.step !== undefined).every((p) => p.phase === "running" && p.steps === 2)).toBe(true);
    const decoding = req.progress.find((p) => p.message?.startsWith("decoding"));
    expect(decoding?.phase).toBe("running");
    await engine.close();
  }, TIMEOUT_MS);

  test("why LoRA tags are checked: sd-cli itself opens a tag's ../ path or absolute path outside --lora-model-dir", () => {
    const work = mkdtempSync(join(dir, "traversal-"));
    Bun.spawnSync(["mkdir", "-p", join(work, "loras")]);
    // Two copies of a real LoRA next to (not inside) the lora dir: one named by ../, one by its absolute path.
    const lora = readFileSync(e.model("tiny-zimage-lora.safetensors").path);
    writeFileSync(join(work, "up.safetensors"), lora);
    const absolute = join(work, "absolute.safetensors");
    writeFileSync(absolute, lora);
    const files = zimageFiles();
    const run = Bun.spawnSync(
      [e.sdCli, "--diffusion-model", files[0]!.path, "--llm", files[1]!.path, "--vae", files[2]!.path, "--lora-model-dir", join(work, "loras"),
        "-p", `a fox <lora:../up:1> <lora:${absolute}:0.5>`, "--steps", "1", "-W", "64", "-H", "64", "--cfg-scale", "1", "-o", join(work, "out.png")],
      { cwd: work, stdout: "pipe", stderr: "pipe", timeout: 60_000 },
    );
    const out = run.stdout.toString() + run.stderr.toString();
    expect(run.exitCode).toBe(0);
    expect(out).toContain(`loading LoRA from '${join(work, "up.safetensors")}'`);
    expect(out).toContain(`loading LoRA from '${absolute}'`);
    expect(out).toContain("LoRA tensors have been applied");
  }, TIMEOUT_MS);

  test("a prompt naming a file outside the source's LoRAs never reaches sd-cli (the worker's own check)", async () => {
    const logger = memoryLogger();
    const engine = new SdCliEngine({ binary: e.sdCli, logger });
    const workDir = mkdtempSync(join(dir, "sd-"));
    for (const prompt of ["a fox <lora:../../x:1>", "a fox <lora:/etc/passwd:1>", "a fox <lora:other:1>"]) {
      const req = request({ task: imageTask({ prompt }), source: zimage(["style.safetensors"]), files: zimageFiles(), workDir, model: "m" });
      const err = await rejection(engine.run(req));
      expect(err.kind).toBe("failed");
      expect(err.message).toContain("the prompt's LoRA tags are refused");
      expect(err.message).toContain(`(model "m")`);
    }
    expect(logger.pids("sd-cli started")).toEqual([]);
    await engine.close();
  }, TIMEOUT_MS);
});

describe.skipIf(!engines)("sd-cli's argv for one model source per family, against the real sd-cli", () => {
  const e = engines!;
  /** What sd-cli logs as it opens each file (stable-diffusion.cpp init_model_loader): the proof of which slot a file went to. */
  const LOADED_AS: Partial<Record<RoleName, string>> = {
    model: "model",
    "diffusion-model": "diffusion model",
    "high-noise-diffusion-model": "high noise diffusion model",
    "clip-l": "clip_l",
    "clip-g": "clip_g",
    t5xxl: "t5xxl",
    "text-encoder": "llm",
    "llm-vision": "llm vision",
    vae: "vae",
    taesd: "tae",
  };
  const families: Record<string, Array<[RoleName, string]>> = {
    "SD 1.5 (one checkpoint)": [["model", "v1-5-pruned-emaonly.safetensors"]],
    "SDXL (separate encoders)": [["diffusion-model", "sdxl-unet.gguf"], ["clip-l", "clip_l.safetensors"], ["clip-g", "clip_g.safetensors"], ["vae", "sdxl_vae.safetensors"]],
    SD3: [["model", "sd3_medium.safetensors"], ["clip-l", "clip_l.safetensors"], ["clip-g", "clip_g.safetensors"], ["t5xxl", "t5xxl_fp16.safetensors"]],
    "FLUX.1 (with a LoRA)": [["diffusion-model", "flux1-dev-q4_0.gguf"], ["clip-l", "clip_l.safetensors"], ["t5xxl", "t5xxl_fp16.safetensors"], ["vae", "ae.safetensors"], ["lora", "realism.safetensors"]],
    "Qwen-Image edit": [["diffusion-model", "qwen-image-edit.gguf"], ["text-encoder", "Qwen2.5-VL-7B.gguf"], ["llm-vision", "mmproj-Qwen2.5-VL-7B.gguf"], ["vae", "qwen_image_vae.safetensors"]],
    "Wan 2.2 (two experts)": [["diffusion-model", "wan2.2_low_noise.gguf"], ["high-noise-diffusion-model", "wan2.2_high_noise.gguf"], ["t5xxl", "umt5-xxl.gguf"], ["vae", "wan_2.1_vae.safetensors"]],
    "Z-Image (with TAESD)": [["diffusion-model", "z_image_turbo.gguf"], ["text-encoder", "Qwen3-4B.gguf"], ["vae", "ae.safetensors"], ["taesd", "taef1.safetensors"]],
  };

  let help = "";
  beforeAll(() => {
    const r = Bun.spawnSync([e.sdCli, "--help"], { stdout: "pipe", stderr: "pipe" });
    help = r.stdout.toString() + r.stderr.toString();
  });

  for (const [family, roles] of Object.entries(families))
    test(`${family}: every flag is in sd-cli --help, and sd-cli opens each file as its role`, () => {
      const workDir = mkdtempSync(join(dir, "argv-"));
      const files: EngineFile[] = roles.map(([role, filename]) => {
        const path = join(workDir, role === "lora" ? "loras" : "models", filename);
        return { role: roleFromName(role), filename, path };
      });
      // Empty files: sd-cli parses the whole command line, then fails to read each file in turn.
      for (const sub of ["models", "loras"]) Bun.spawnSync(["mkdir", "-p", join(workDir, sub)]);
      for (const f of files) writeFileSync(f.path, "");
      const source = sdSource(roles.map(([role, filename]) => ({ role: roleFromName(role), filename })), { steps: 1, width: 64, height: 64 });
      const task = imageTask({ prompt: "a lighthouse", seed: 1n }).kind.value as ImageTask;
      const args = sdCliArgs({ task, source, files, workDir });
      for (const flag of args.filter((a) => a.startsWith("-") && !/^-\d/.test(a)))
        expect([flag, new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, "\\-")}[\\s,]`, "m").test(help)]).toEqual([flag, true]);
      const run = Bun.spawnSync([e.sdCli, ...args], { cwd: workDir, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
      const out = run.stdout.toString() + run.stderr.toString();
      expect(out).not.toContain("unknown argument");
      expect(out).not.toContain("invalid argument");
      for (const f of files) {
        if (f.role === ModelFileRole.LORA) {
          // LoRAs are not loaded before the models are: the tag in the prompt names the exact file.
          expect(args[args.indexOf("-p") + 1]).toBe(`a lighthouse <lora:${f.filename}:1>`);
          expect(args[args.indexOf("--lora-model-dir") + 1]).toBe(join(workDir, "loras"));
          continue;
        }
        const role = roles.find(([, name]) => name === f.filename)![0];
        expect(out).toContain(`loading ${LOADED_AS[role]} from '${f.path}'`);
      }
    }, TIMEOUT_MS);
});

describe.skipIf(!engines)("LlamaServerEngine with the real llama-server", () => {
  const e = engines!;
  test("a thinking model: every reasoning token is counted in progress, the reasoning is kept in the output", async () => {
    const engine = new LlamaServerEngine({ binary: e.llamaServer, idleMs: 60_000, healthIntervalMs: 20 });
    try {
      const model = e.model("tiny-llama-r1.gguf");
      const req = request({
        // A fixed seed: unseeded, an unlucky sample (a token that is part of a UTF-8 character, which
        // llama-server sends with the next one) made 29 pieces of 30 tokens now and then.
        task: textTask({ messages: [{ role: "user", content: "think first" }], maxTokens: 30, seed: 42n }),
        source: llamaSource(model.name),
        files: [{ role: ModelFileRole.MODEL, filename: model.name, path: model.path }],
        workDir: dir,
      });
      const [output] = await engine.run(req);
      const result = decodeTextOutput(output!.data);
      expect(result.usage.completionTokens).toBe(30);
      expect(result.reasoning!.length).toBeGreaterThan(0);
      const steps = req.progress.filter((p) => p.phase === "running" && p.step! > 0);
      // Before the fix no step was reported: only delta.content was counted, and it never came.
      expect(steps.map((p) => p.step)).toEqual(Array.from({ length: steps.length }, (_, i) => i + 1));
      expect(steps.length).toBe(30);
      expect(steps.at(-1)!.message).toMatch(/^30 tokens \(\d+ reasoning\)$/);
    } finally {
      await engine.close();
    }
  }, TIMEOUT_MS);
});
