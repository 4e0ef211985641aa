import { afterAll, beforeAll } from "bun:test";
import { create } from "@bufbuild/protobuf";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ModelFileRole, ModelFileSchema, type ModelFile } from "../../../gen/studio/v1/model_pb.js";
import { DownloadManager, type DownloadManagerOptions } from "../../../worker/download/index.js";
import { FixtureServer } from "./fixture-server.js";

const made: string[] = [];

/** A fresh temp dir; removeTempDirs() (in afterAll) deletes every one made. */
export async function tempDir(prefix = "dl-test-"): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await fs.rm(dir, { recursive: true, force: true });
}

/** Starts a fixture server before the calling file's tests and stops it (and removes the temp dirs) after them. */
export function withFixtureServer(started: (server: FixtureServer) => void): void {
  let server: FixtureServer | undefined;
  beforeAll(async () => {
    server = await FixtureServer.start();
    started(server);
  });
  afterAll(async () => {
    await server?.stop();
    await removeTempDirs();
  });
}

/** A ModelFile for a test URL. */
export function modelFile(url: string, filename: string, extra: { sha256?: string; approxBytes?: number; role?: ModelFileRole } = {}): ModelFile {
  return create(ModelFileSchema, {
    role: extra.role ?? ModelFileRole.MODEL,
    url,
    filename,
    sha256: extra.sha256,
    approxBytes: extra.approxBytes !== undefined ? BigInt(extra.approxBytes) : undefined,
  });
}

/** A manager with test-sized timings; warnings are collected for assertions. */
export function manager(cacheDir: string, options: Partial<DownloadManagerOptions> = {}) {
  const warnings: Array<{ obj: object; msg?: string }> = [];
  const dm = new DownloadManager({
    cacheDir,
    retryBaseDelayMs: 5,
    stallTimeoutMs: 5_000,
    progressIntervalMs: 0,
    logger: { info() {}, warn: (obj, msg) => void warnings.push({ obj, msg }) },
    ...options,
  });
  return { dm, warnings };
}

/** Lists the files under a dir (relative paths), recursively. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  return out.sort();
}
