import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { DRAIN_REPORT_MS } from "../../worker/runtime/worker-runtime.js";
import type { Transport } from "@connectrpc/connect";
import { sqliteSnapshot, type StoreSnapshot } from "./invariants.js";
import { pgSnapshot } from "./pg-snapshot.js";
import { REPO, StudioProcess, WorkerChild, compileWorker, freePort, gracefulStopProblem, recordedPids } from "./processes.js";

/** The model files the sd-cpp model names, served by the cluster's file server. */
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 9)) & 0xff);
const SD_FILES = { "chaos-dit.gguf": bytes(400_000, 1), "chaos-te.gguf": bytes(150_000, 2), "chaos-vae.safetensors": bytes(60_000, 3) };

export const SYNTH_MODEL = "chaos-synth";
export const SD_MODEL = "chaos-sd";
export const BROKEN_MODEL = "chaos-broken";
/** An sd job whose prompt contains this makes the fixture fail (the shim switches it to FAKE_SD_MODE=fail). */
export const FAIL_MARKER = "chaos-must-fail";

/** The workers' --drain-grace-seconds. */
const DRAIN_GRACE_SECONDS = 3;
/**
 * How long a worker's graceful stop may take before the harness SIGKILLs it (and calls that a
 * violation): the drain grace, then the report window of jobs stopped when it ran out, then closing
 * the session (2 s) and stopping engine groups (SIGTERM grace up to 5 s, then 2 s for them to be
 * gone), with room for a loaded machine.
 */
export const WORKER_STOP_BUDGET_MS = DRAIN_GRACE_SECONDS * 1000 + DRAIN_REPORT_MS + 15_000;
/** The studio's graceful stop (it closes sessions and the database). */
const STUDIO_STOP_BUDGET_MS = 15_000;

export interface ClusterOptions {
  dir: string;
  /** Studio replicas on this PostgreSQL database (workers rotate through them); absent: one studio on SQLite. */
  postgres?: { databaseUrl: string; replicas: number };
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  maxAttempts: number;
  /** Delay per sampling step of the fake sd-cli, so that sd jobs are in flight when things are killed. */
  sdStepMs: number;
}

/**
 * Everything the chaos run kills and restarts: the studio as a child process on a fixed port and
 * data dir, compiled workers (synthetic and fake sd-cli), a local file server for the sd model's
 * files, and a client. Workers' sd-cli children run through a shim that records their pids.
 */
export class ChaosCluster {
  /** The studio processes: one on SQLite, or the replicas sharing PostgreSQL. */
  readonly studios: StudioProcess[];
  readonly workers: WorkerChild[] = [];
  readonly binary: string;
  readonly fileGets = { count: 0 };
  private fileServer: ReturnType<typeof Bun.serve> | undefined;
  private shim = "";
  private seq = 0;
  jobs!: Client<typeof JobService>;

  private constructor(readonly opts: ClusterOptions, ports: number[]) {
    this.binary = join(opts.dir, "studio-worker");
    this.studios = ports.map(
      (port, i) =>
        new StudioProcess({
          port,
          dataDir: join(opts.dir, opts.postgres ? `scratch-${i}` : "data"),
          logFile: join(opts.dir, opts.postgres ? `studio-${i}.log` : "studio.log"),
          leaseTtlMs: opts.leaseTtlMs,
          heartbeatIntervalMs: opts.heartbeatIntervalMs,
          maxAttempts: opts.maxAttempts,
          databaseUrl: opts.postgres?.databaseUrl,
        }),
    );
  }

  /** The first studio (the only one on SQLite). */
  get studio(): StudioProcess {
    return this.studios[0]!;
  }

  /** The SQLite data dir (one studio), or the replicas' scratch dirs. */
  get dataDir(): string {
    return this.studio.opts.dataDir;
  }

  /** Compiles the worker, starts the file server and the studios, and registers the models. */
  static async start(opts: ClusterOptions): Promise<ChaosCluster> {
    const ports: number[] = [];
    for (let i = 0; i < (opts.postgres?.replicas ?? 1); i++) ports.push(await freePort());
    const c = new ChaosCluster(opts, ports);
    mkdirSync(join(opts.dir, "logs"), { recursive: true });
    compileWorker(c.binary);
    c.shim = join(opts.dir, "sd-cli-shim");
    writeFileSync(
      c.shim,
      `#!/bin/sh\necho $$ >> "$CHAOS_SD_PIDS"\ncase "$*" in *${FAIL_MARKER}*) export FAKE_SD_MODE=fail;; esac\nexec '${join(REPO, "test/fixtures/sd-cli")}' "$@"\n`,
    );
    chmodSync(c.shim, 0o755);
    c.fileServer = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) => {
        const body = SD_FILES[new URL(req.url).pathname.slice(1) as keyof typeof SD_FILES];
        if (!body) return new Response("not found", { status: 404 });
        c.fileGets.count += 1;
        return new Response(Buffer.from(body), { headers: { "content-type": "application/octet-stream" } });
      },
    });
    await Promise.all(c.studios.map((s) => s.start()));
    // Calls go to the replicas in turn, so a client retrying after a killed replica reaches a live one.
    c.jobs = createClient(JobService, rotating(c.studios.map((s) => createConnectTransport({ baseUrl: s.url, httpVersion: "1.1" }))));
    await c.registerModels();
    return c;
  }

  private async registerModels(): Promise<void> {
    const registry = createClient(RegistryService, createConnectTransport({ baseUrl: this.studio.url, httpVersion: "1.1" }));
    const base = `http://127.0.0.1:${this.fileServer!.port}`;
    const file = (role: ModelFileRole, name: keyof typeof SD_FILES) => ({
      role,
      filename: name,
      url: `${base}/${name}`,
      sha256: createHash("sha256").update(SD_FILES[name]).digest("hex"),
      approxBytes: BigInt(SD_FILES[name].byteLength),
    });
    await registry.createModel({
      name: SYNTH_MODEL,
      source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { steps: 4, width: 48, height: 40 } },
    });
    await registry.createModel({
      name: SD_MODEL,
      source: {
        engine: ModelEngine.SD_CPP,
        files: [
          file(ModelFileRole.DIFFUSION_MODEL, "chaos-dit.gguf"),
          file(ModelFileRole.TEXT_ENCODER, "chaos-te.gguf"),
          file(ModelFileRole.VAE, "chaos-vae.safetensors"),
        ],
        cliDefaults: { steps: 8, width: 32, height: 24, cfgScale: 1, samplingMethod: "euler" },
      },
    });
    await registry.createModel({
      name: BROKEN_MODEL,
      source: {
        engine: ModelEngine.SD_CPP,
        files: [{ role: ModelFileRole.DIFFUSION_MODEL, filename: "gone.gguf", url: `${base}/gone.gguf`, sha256: "ab".repeat(32) }],
      },
    });
  }

  /**
   * Starts one more worker of a kind; sd workers share one model cache (so they race for its locks).
   * `home` names its --work-dir (and a synthetic worker's cache): a fresh one by default, or that of a
   * killed worker, so the replacement's start-up crash recovery meets what the kill left behind.
   */
  startWorker(kind: "synthetic" | "sd", home?: string): WorkerChild {
    this.seq += 1;
    const name = `${kind}-${this.seq}`;
    const dirName = home ?? name;
    const args = [
      "--server", this.studios.map((s) => s.url).join(","),
      "--cache-dir", join(this.opts.dir, kind === "sd" ? "cache-sd" : `cache-${dirName}`),
      "--work-dir", this.workDirOf(dirName),
      "--drain-grace-seconds", String(DRAIN_GRACE_SECONDS),
      "--job-timeout", "60",
      ...(kind === "sd" ? ["--engines", "sd-cpp", "--sd-cli", this.shim] : ["--engines", "synthetic"]),
    ];
    const env = { CHAOS_SD_PIDS: this.pidFile(name), FAKE_SD_STEP_MS: String(this.opts.sdStepMs) };
    const w = new WorkerChild(name, kind, this.binary, args, join(this.opts.dir, "logs", `${name}.log`), env, dirName);
    this.workers.push(w);
    return w;
  }

  /** The --work-dir of a worker home (see startWorker). */
  workDirOf(home: string): string {
    return join(this.opts.dir, "work", home);
  }

  pidFile(workerName: string): string {
    return join(this.opts.dir, "logs", `${workerName}.sd-pids`);
  }

  /** Every sd-cli pid any worker started (each leads its own process group). */
  engineGroups(): Set<number> {
    return new Set(this.workers.flatMap((w) => recordedPids(this.pidFile(w.name))));
  }

  alive(kind?: "synthetic" | "sd"): WorkerChild[] {
    return this.workers.filter((w) => w.alive && !w.stopped && (kind === undefined || w.kind === kind));
  }

  /**
   * Stops every worker (drain; SIGKILL only past its budget) and the studio (graceful), and the file
   * server. Returns what was wrong with those stops: each must exit 0 by itself within its budget.
   */
  async stopAll(): Promise<string[]> {
    const stops = await Promise.all(this.workers.filter((w) => w.alive).map((w) => w.stop(WORKER_STOP_BUDGET_MS)));
    const problems = stops.map((s) => gracefulStopProblem(s, WORKER_STOP_BUDGET_MS)).filter((p): p is string => p !== undefined);
    const codes = await Promise.all(this.studios.map((s) => s.stop(STUDIO_STOP_BUDGET_MS)));
    codes.forEach((code, i) => {
      const which = this.studios.length > 1 ? `studio replica ${i}` : "the studio";
      if (code !== 0) problems.push(`${which}: a graceful stop ended with ${code === null ? "no exit status" : `exit status ${code}`}, not 0`);
    });
    this.fileServer?.stop(true);
    return problems;
  }

  /** Kills everything at once (the run broke): workers, studio, file server. */
  async killAll(): Promise<void> {
    for (const w of this.workers) if (w.alive) {
      w.signal("SIGCONT");
      await w.kill9();
    }
    for (const s of this.studios) await s.kill9();
    this.fileServer?.stop(true);
  }

  /** What the stopped studios left, read from SQLite and the output files, or from PostgreSQL. */
  snapshot(): Promise<StoreSnapshot> {
    const pg = this.opts.postgres;
    return pg ? pgSnapshot(pg.databaseUrl, this.studios.map((s) => s.opts.dataDir)) : Promise.resolve(sqliteSnapshot(this.dataDir));
  }

  /** Files of the sd model, for checking the shared cache. */
  static readonly sdFiles = SD_FILES;
}

/** A transport that sends each call through the next of several (one per studio replica). */
function rotating(transports: Transport[]): Transport {
  let next = 0;
  const pick = () => transports[next++ % transports.length]!;
  return {
    unary: (...args) => pick().unary(...args),
    stream: (...args) => pick().stream(...args),
  };
}
