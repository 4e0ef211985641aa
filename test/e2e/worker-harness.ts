import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHash } from "node:crypto";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";
import type { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { readLines } from "../helpers/read-lines.js";
import { buildWorker } from "../../scripts/worker-binary.js";

export const REPO = resolve(import.meta.dir, "../..");
let privateDir: string | undefined;

/** This run's copy of dist/studio-worker: another suite rebuilding dist/ cannot swap it under a running test. */
export function workerBinary(): string {
  if (!privateDir) throw new Error("buildWorkerBinary() first");
  return join(privateDir, "studio-worker");
}

/**
 * Compiles the worker with the project's own `bun run build:worker` (the binary operators get,
 * into dist/studio-worker) and copies it to a private temp dir; call removeWorkerBinary in afterAll.
 */
export function buildWorkerBinary(): void {
  if (privateDir) return;
  const built = buildWorker();
  const dir = mkdtempSync(join(tmpdir(), "studio-worker-bin-"));
  copyFileSync(built, join(dir, "studio-worker"));
  chmodSync(join(dir, "studio-worker"), 0o755);
  privateDir = dir;
}

/** Removes the private copy. */
export function removeWorkerBinary(): void {
  if (privateDir) rmSync(privateDir, { recursive: true, force: true });
  privateDir = undefined;
}

export const sha256Hex = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A local HTTP server for model files that counts the GETs of each path. */
export function startFileServer(files: Record<string, Uint8Array>) {
  const gets = new Map<string, number>();
  const handle = {
    url: "",
    gets,
    /** While set, each GET waits for the promise it returns before it is answered (a test holds a download open). */
    hold: undefined as ((path: string) => Promise<void>) | undefined,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const body = files[path.slice(1)];
      if (!body) return new Response("not found", { status: 404 });
      if (req.method === "GET") gets.set(path, (gets.get(path) ?? 0) + 1);
      if (req.method === "GET" && handle.hold) await handle.hold(path);
      return new Response(Buffer.from(body), { headers: { "content-type": "application/octet-stream", "accept-ranges": "none" } });
    },
  });
  handle.url = `http://127.0.0.1:${server.port}`;
  return handle;
}

/**
 * A fixture shim: sources `ctl` (lines like `export FAKE_SD_MODE=hang`) so one worker can switch
 * the fixture's mode between jobs, records its pid in `pids`, then execs the fixture (same pid).
 */
export function writeShim(dir: string, name: string, fixture: string, ctl: string, pids: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/sh\n[ -f '${ctl}' ] && . '${ctl}'\necho $$ >> '${pids}'\nexec '${join(REPO, "test/fixtures", fixture)}' "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** The pids a shim recorded, oldest first. */
export function recordedPids(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map(Number);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The variables a test gives a worker for its fixture engines (FAKE_SD_MODE, ...), as --engine-env
 * names them: engines get a minimal environment otherwise (issue 16, item 13).
 */
export function forEngines(env: Record<string, string>): string {
  return Object.keys(env)
    .filter((k) => !k.startsWith("STUDIO_") && k !== "HF_TOKEN")
    .join(",");
}

/** The compiled worker as a child process, with its JSON log lines collected. */
export class WorkerProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly stderr: string[] = [];
  readonly proc: ReturnType<typeof Bun.spawn>;
  private waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.proc = Bun.spawn([workerBinary(), ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", STUDIO_ENGINE_ENV: forEngines(env), ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = this.read(this.proc.stdout as ReadableStream<Uint8Array>, (line) => {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        obj = { raw: line };
      }
      this.lines.push(obj);
      for (const w of [...this.waiters]) if (w.match(obj)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(obj);
      }
    });
    const err = this.read(this.proc.stderr as ReadableStream<Uint8Array>, (line) => this.stderr.push(line));
    this.outputDone = Promise.all([out, err]).then(() => {});
  }

  private readonly outputDone: Promise<void>;

  /** The first log line (already seen or coming) that matches. */
  waitForLine(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  /** The exit code, once the process has exited and all its output has been read. */
  get exited(): Promise<number> {
    return this.outputDone.then(() => this.proc.exited);
  }

  private async read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    for await (const line of readLines(stream)) onLine(line);
  }
}

const TERMINAL = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]);

/**
 * Follows a job over WatchJobs (snapshot, then changes) until `until` holds, calling `seen` for
 * every state it passes through; the default waits for a terminal status.
 */
export async function watchJob(
  jobs: Client<typeof JobService>,
  jobId: string,
  { until = (j: Job) => TERMINAL.has(j.status), seen }: { until?: (j: Job) => boolean; seen?: (j: Job) => void } = {},
): Promise<Job> {
  const abort = new AbortController();
  try {
    for await (const res of jobs.watchJobs({ jobIds: [jobId], includeSnapshot: true }, { signal: abort.signal })) {
      if (!res.job) continue;
      seen?.(res.job);
      if (until(res.job)) return res.job;
    }
  } finally {
    abort.abort();
  }
  throw new Error(`WatchJobs ended before job ${jobId} reached the state asked for`);
}

/** All bytes of one output, over GetJobOutput. */
export async function readOutput(jobs: Client<typeof JobService>, jobId: string, index: number) {
  const parts: Uint8Array[] = [];
  let mimeType = "";
  for await (const res of jobs.getJobOutput({ jobId, index })) {
    if (res.output) mimeType = res.output.mimeType;
    parts.push(res.chunk);
  }
  return { mimeType, data: Buffer.concat(parts) };
}
