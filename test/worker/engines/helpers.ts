import { create } from "@bufbuild/protobuf";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ImageTaskSchema, TaskSchema, TextTaskSchema, ChatMessageSchema, type Task } from "../../../gen/studio/v1/job_pb.js";
import {
  ModelCliDefaultsSchema,
  ModelEngine,
  ModelFileRole,
  ModelFileSchema,
  ModelSourceSchema,
  type ModelSource,
} from "../../../gen/studio/v1/model_pb.js";
import type { EngineFile, EngineProgress, EngineRunRequest } from "../../../worker/engines/index.js";

export const FIXTURES = resolve(import.meta.dir, "../../fixtures");
export const FAKE_SD_CLI = join(FIXTURES, "sd-cli");
export const FAKE_LLAMA_SERVER = join(FIXTURES, "llama-server");

/** A temp work dir laid out as the download manager leaves it: models/ with the files, loras/. */
export async function workDir(files: { role: ModelFileRole; filename: string }[] = []): Promise<{
  dir: string;
  files: EngineFile[];
  loraDir: string;
  cleanup(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "engines-"));
  await mkdir(join(dir, "models"));
  await mkdir(join(dir, "loras"));
  const out: EngineFile[] = [];
  for (const f of files) {
    const path = f.role === ModelFileRole.LORA ? join(dir, "loras", f.filename) : join(dir, "models", f.filename);
    await writeFile(path, `fake weights of ${f.filename}`);
    out.push({ role: f.role, filename: f.filename, path });
  }
  return { dir, files: out, loraDir: join(dir, "loras"), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An sd-cpp source with the given files and cli defaults. */
export function sdSource(files: { role: ModelFileRole; filename: string }[], cliDefaults: Record<string, unknown> = {}): ModelSource {
  return create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: files.map((f) => create(ModelFileSchema, { role: f.role, filename: f.filename, url: `http://127.0.0.1:1/${f.filename}` })),
    cliDefaults: create(ModelCliDefaultsSchema, cliDefaults),
  });
}

export function llamaSource(filename: string): ModelSource {
  return create(ModelSourceSchema, {
    engine: ModelEngine.LLAMA_CPP,
    files: [create(ModelFileSchema, { role: ModelFileRole.MODEL, filename, url: `http://127.0.0.1:1/${filename}` })],
    cliDefaults: create(ModelCliDefaultsSchema, {}),
  });
}

export function syntheticSource(cliDefaults: Record<string, unknown> = {}): ModelSource {
  return create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: create(ModelCliDefaultsSchema, cliDefaults) });
}

export function imageTask(fields: { prompt: string; negativePrompt?: string; seed?: bigint; batchCount?: number; overrides?: Record<string, unknown> }): Task {
  return create(TaskSchema, {
    kind: {
      case: "image",
      value: create(ImageTaskSchema, {
        prompt: fields.prompt,
        negativePrompt: fields.negativePrompt ?? "",
        seed: fields.seed,
        batchCount: fields.batchCount ?? 0,
        overrides: fields.overrides ? create(ModelCliDefaultsSchema, fields.overrides) : undefined,
      }),
    },
  });
}

export function textTask(fields: { prompt?: string; messages?: { role: string; content: string }[]; maxTokens?: number; seed?: bigint }): Task {
  return create(TaskSchema, {
    kind: {
      case: "text",
      value: create(TextTaskSchema, {
        prompt: fields.prompt ?? "",
        messages: (fields.messages ?? []).map((m) => create(ChatMessageSchema, m)),
        maxTokens: fields.maxTokens,
        seed: fields.seed,
      }),
    },
  });
}

/** A run request that records every progress report. */
export function request(
  fields: Omit<EngineRunRequest, "signal" | "onProgress" | "jobId" | "model"> & { signal?: AbortSignal; jobId?: string; model?: string; onProgress?: (p: EngineProgress) => void },
): EngineRunRequest & { progress: EngineProgress[] } {
  const progress: EngineProgress[] = [];
  return {
    jobId: fields.jobId ?? "job-1",
    model: fields.model ?? "test-model",
    signal: fields.signal ?? new AbortController().signal,
    ...fields,
    progress,
    onProgress: (p) => {
      progress.push(p);
      fields.onProgress?.(p);
    },
  };
}

/** True while a process (or, with a negative id, a process group) exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** A logger that keeps what the engines log, so tests can read pids. */
export function memoryLogger() {
  const entries: { obj: Record<string, unknown>; msg?: string }[] = [];
  const push = (obj: object, msg?: string) => entries.push({ obj: obj as Record<string, unknown>, msg });
  return { entries, info: push, warn: push, debug: push, pids: (msg: string) => entries.filter((e) => e.msg === msg).map((e) => e.obj.pid as number) };
}

/** A promise that settles with the error a promise rejects with. */
export async function rejection(p: Promise<unknown>): Promise<Error & { kind?: string; retryable?: boolean }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { kind?: string };
  }
  throw new Error("expected the promise to reject");
}
