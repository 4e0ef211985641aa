#!/usr/bin/env bun
// First: from here on SIGTERM and SIGINT are held for main(), never the default action mid start-up.
import { onShutdownSignal } from "./shutdown-signals.js";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { engineName } from "../contract/names.js";
import { ConfigError } from "../contract/settings.js";
import { resolveEngines, type WorkerConfig } from "./config.js";
import { DownloadManager } from "./download/index.js";
import { engineEnv } from "./engines/engine-env.js";
import { LlamaServerEngine } from "./engines/llama-server-engine.js";
import { MultiEngine } from "./engines/multi-engine.js";
import { ensureSafeDir, UnsafeDirError } from "./private-dir.js";
import { WarmServerRecords } from "./recovery/owner-record.js";
import { recoverWorkDir } from "./recovery/recover-work-dir.js";
import { SdCliEngine } from "./engines/sd-cli-engine.js";
import { SyntheticEngine } from "./engines/synthetic-engine.js";
import type { Engine } from "./engines/types.js";
import { WorkerRuntime } from "./runtime/worker-runtime.js";
import { SessionClient, SessionRefusedError } from "./session/session-client.js";
import { createWorkerTransport } from "./session/transport.js";
import { BarView } from "./ui/bar-view.js";
import { parseWorkerArgs } from "./ui/cli-options.js";
import { LogView } from "./ui/log-view.js";
import { createWorkerLogger } from "./ui/logger.js";
import { setUpGpus, type GpuSetup } from "./gpus/setup.js";
import { GpuUpdateSchema } from "../gen/studio/v1/worker_service_pb.js";
import { create } from "@bufbuild/protobuf";
import pkg from "../package.json" with { type: "json" };

/** The worker's version, reported in hello. */
export const WORKER_VERSION: string = pkg.version;

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function buildEngines(config: WorkerConfig, logger: ReturnType<typeof createWorkerLogger>): MultiEngine {
  const warmServers = new WarmServerRecords(config.workDir);
  const found = resolveEngines(config, { onPath: (name) => Bun.which(name) ?? undefined, isExecutable });
  const engines: Engine[] = [];
  const env = engineEnv(config.engineEnv);
  if (found.sdCli) engines.push(new SdCliEngine({ binary: found.sdCli, env, logger: logger.child({ engine: "sd-cpp" }) }));
  if (found.llamaServer)
    engines.push(
      new LlamaServerEngine({
        binary: found.llamaServer,
        env,
        idleMs: config.llamaIdleSeconds * 1000,
        ctxSize: config.llamaCtxSize,
        gpuLayers: config.llamaGpuLayers,
        logger: logger.child({ engine: "llama-cpp" }),
        onSpawn: (pgid, binary) => {
          try {
            warmServers.spawned(pgid, binary);
          } catch (err) {
            logger.warn({ pgid, err: (err as Error).message }, "cannot record the llama-server's process group for crash recovery");
          }
        },
        onReaped: (pgid) => {
          try {
            warmServers.reaped(pgid);
          } catch (err) {
            logger.warn({ pgid, err: (err as Error).message }, "cannot remove the llama-server's crash recovery record");
          }
        },
      }),
    );
  if (found.synthetic) engines.push(new SyntheticEngine({ stepDelayMs: config.syntheticStepMs }));
  if (engines.length === 0)
    throw new ConfigError(
      "no engine to run: neither sd-cli nor llama-server was found on PATH; pass --sd-cli PATH, --llama-server PATH or --engines synthetic",
    );
  return new MultiEngine(engines);
}

/**
 * `studio-worker`: parse the flags, connect, run jobs; SIGTERM drains, a second signal stops at once.
 * A signal during start-up (before the session runs) stops it at the next step: what was started is
 * closed and the worker exits 0 (a second signal then exits 130 at once).
 */
async function main(argv: string[]): Promise<number> {
  let startupSignal: NodeJS.Signals | undefined;
  onShutdownSignal((signal) => {
    if (startupSignal) process.exit(130);
    startupSignal = signal;
  });
  let config: WorkerConfig;
  let dirNotes: string[];
  try {
    config = parseWorkerArgs(argv, { version: WORKER_VERSION });
    // Before anything reads them: another user's (or a world-writable) dir could hold planted records.
    dirNotes = [
      ensureSafeDir(config.cacheDir, "--cache-dir", { private: false }),
      ensureSafeDir(config.workDir, "--work-dir", { private: true }),
    ].filter((n): n is string => n !== undefined);
  } catch (err) {
    if (!(err instanceof ConfigError) && !(err instanceof UnsafeDirError)) throw err;
    process.stderr.write(`studio-worker: bad configuration: ${err.message}\n`);
    return 2;
  }
  const bars = config.progress === "bars" || (config.progress === "auto" && process.stderr.isTTY === true);
  const barView = bars ? new BarView() : undefined;
  const logger = createWorkerLogger(config.logLevel, barView ? (line) => barView.log(line) : undefined);
  for (const note of dirNotes) logger.warn({}, note);

  let engines: MultiEngine;
  let ca: Buffer | undefined;
  let gpus: GpuSetup;
  // The session client exists only later; GPU updates go to whatever session is live then.
  let client: SessionClient | undefined;
  try {
    gpus = await setUpGpus(config, logger.child({ part: "gpus" }), {
      isExecutable,
      onUpdate: (devices) => client?.session?.post({ case: "gpuUpdate", value: create(GpuUpdateSchema, { gpus: devices }) }),
    });
    engines = buildEngines(config, logger);
    if (config.caFile) {
      if (!config.server.every((s) => s.startsWith("https:"))) throw new ConfigError("--ca-file is only for an https:// --server (every URL given)");
      try {
        ca = readFileSync(config.caFile);
      } catch (err) {
        throw new ConfigError(`--ca-file: cannot read ${config.caFile}: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    barView?.stop();
    process.stderr.write(`studio-worker: bad configuration: ${err.message}\n`);
    return 2;
  }

  const stoppedDuringStartup = async (stage: string): Promise<number> => {
    await engines.close().catch((err) => logger.warn({ err }, "an engine did not close cleanly"));
    barView?.stop();
    logger.info({ signal: startupSignal, stage }, "stopped during start-up");
    return 0;
  };
  if (startupSignal) return stoppedDuringStartup("configuration");

  // Before the session opens: a worker killed on this --work-dir may have left engines running.
  await recoverWorkDir(config.workDir, { logger: logger.child({ part: "recovery" }) });
  if (startupSignal) return stoppedDuringStartup("crash recovery");

  const downloads = new DownloadManager({
    cacheDir: config.cacheDir,
    cacheMaxBytes: config.cacheMaxBytes,
    hfToken: config.hfToken,
    stallTimeoutMs: config.stallTimeout * 1000,
    parts: config.downloadParts,
    partThresholdBytes: config.downloadPartThreshold,
    logger: logger.child({ part: "download" }),
  });
  const runtime = new WorkerRuntime({
    name: config.name,
    version: WORKER_VERSION,
    slots: gpus.plan.slotGpus.length,
    slotGpus: gpus.plan.slotGpus,
    gpus: gpus.pool,
    cpuOnly: gpus.cpuOnly,
    labels: config.labels,
    engines,
    downloads,
    view: barView ?? new LogView(logger),
    logger,
    workRoot: config.workDir,
    jobTimeoutMs: config.jobTimeout * 1000,
  });
  // One transport per studio replica; the session client rotates through them when a session ends.
  const transports = config.server.map((server) => createWorkerTransport(server, { ca }));
  client = new SessionClient({ transport: transports, servers: config.server, handlers: runtime, logger, token: config.token });
  runtime.attach(client);
  gpus.pool?.start();
  await runtime.loadCache();
  if (startupSignal) return stoppedDuringStartup("reading the cache");
  logger.info(
    {
      server: config.server,
      name: config.name,
      slots: gpus.plan.slotGpus.length,
      gpus: gpus.plan.gpus.map(({ gpu, slots }) => `${gpu.index}:${slots}`).join(",") || "none",
      engines: engines.kinds.map((k) => engineName(k)),
      cacheDir: config.cacheDir,
      workDir: config.workDir,
    },
    "studio-worker starting",
  );

  let exitCode = 0;
  let signals = 0;
  let shutdown: Promise<void> | undefined;
  const sessions = client;
  const finish = async () => {
    gpus.pool?.stop();
    await sessions.stop();
    await engines.close().catch((err) => logger.warn({ err }, "an engine did not close cleanly"));
    barView?.stop();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      logger.info({ signal, graceSeconds: config.drainGraceSeconds, jobs: runtime.activeJobs }, "draining: no new jobs");
      shutdown = runtime.drain(config.drainGraceSeconds * 1000).then(finish);
      return;
    }
    logger.warn({ signal }, "stopping at once");
    exitCode = 130;
    runtime.stopNow();
    shutdown = finish();
  };
  onShutdownSignal(onSignal);

  try {
    await sessions.run();
  } catch (err) {
    if (!(err instanceof SessionRefusedError)) throw err;
    logger.fatal({ err: err.message }, "the studio refused this worker; check --token");
    runtime.stopNow();
    await finish();
    return 1;
  }
  await shutdown;
  logger.info({ exitCode }, "studio-worker stopped");
  return exitCode;
}

// No top-level await: the binary is compiled with --bytecode (see package.json), which needs none.
void main(process.argv).then((code) => process.exit(code));
