#!/usr/bin/env bun
/**
 * For whoever has a machine with a real NVIDIA (or AMD) GPU: checks that the worker sees it and that
 * jobs run on it, with the same code the suite tests against a stand-in nvidia-smi.
 *
 *   bun scripts/gpu-check.ts [--gpus all|0,1] [--llama-server PATH] [--sd-cli PATH]
 *                            [--text-model qwen3-0.6b] [--image-model z-image-turbo] [--out DIR]
 *                            [--text-source FILE] [--image-source FILE]
 *
 * --text-source and --image-source run a ModelSource of your own (wire JSON, as `studio models add`
 * takes) instead of a seeded model: one whose files are already on a local server, say.
 *
 * 1. prints the GPU inventory the worker reads (nvidia-smi's CSV query, else rocm-smi's JSON);
 * 2. starts a studio on a temporary database and the worker from source with those GPUs;
 * 3. prints the GPUs as the studio's ListWorkers shows them;
 * 4. runs one text job and one image job (the seeded models by default: their files come from
 *    Hugging Face into the worker's usual cache, several GB for the image model the first time),
 *    watching nvidia-smi's process list to see each engine process on its GPU;
 * 5. saves the outputs and says what it saw. Exit 0 when both jobs succeeded on a GPU.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gpuSummary } from "../contract/gpus.js";
import { checkModelSourceJson, modelSourceFromJson } from "../contract/model-source.js";
import { RegistryService } from "../gen/studio/v1/registry_service_pb.js";
import { formatBytes } from "../contract/byte-size.js";
import { outputFileName } from "../contract/output-files.js";
import { JobStatus, type Job, type Task } from "../gen/studio/v1/job_pb.js";
import { JobService } from "../gen/studio/v1/job_service_pb.js";
import { WorkerService } from "../gen/studio/v1/worker_service_pb.js";
import { startStudio } from "../server/app.js";
import { createLogger } from "../server/log.js";
import { describeNoGpu, readInventory } from "../worker/gpus/inventory.js";
import { NVIDIA_APPS_QUERY, parseNvidiaApps } from "../worker/gpus/nvidia-smi.js";
import { runTool } from "../worker/gpus/run-tool.js";

const { values: args } = parseArgs({
  options: {
    gpus: { type: "string", default: "all" },
    "llama-server": { type: "string" },
    "sd-cli": { type: "string" },
    "text-model": { type: "string", default: "qwen3-0.6b" },
    "image-model": { type: "string", default: "z-image-turbo" },
    out: { type: "string" },
    "text-source": { type: "string" },
    "image-source": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: bun scripts/gpu-check.ts [--gpus all|0,1] [--llama-server PATH] [--sd-cli PATH] [--text-model NAME] [--image-model NAME] [--text-source FILE] [--image-source FILE] [--out DIR]",
  );
  process.exit(0);
}

const ROOT = resolve(import.meta.dir, "..");
const TERMINAL = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED];

// 1. What the worker will see.
const tools = { nvidiaSmi: Bun.which("nvidia-smi") ?? undefined, rocmSmi: Bun.which("rocm-smi") ?? undefined };
const inventory = await readInventory(tools);
if (inventory.snapshot.gpus.length === 0) {
  console.error(`gpu-check: ${describeNoGpu(inventory).message}; nothing to check on this machine`);
  process.exit(1);
}
console.log(`inventory (${inventory.vendor === "nvidia" ? tools.nvidiaSmi : tools.rocmSmi}):`);
for (const g of inventory.snapshot.gpus)
  console.log(`  GPU ${g.index}  ${g.name}  ${g.uuid || "(no id)"}  ${formatBytes(g.totalBytes - g.usedBytes)} free of ${formatBytes(g.totalBytes)}`);

const llamaServer = args["llama-server"] ?? Bun.which("llama-server") ?? undefined;
const sdCli = args["sd-cli"] ?? Bun.which("sd-cli") ?? undefined;
if (!llamaServer || !sdCli) {
  console.error("gpu-check: needs llama-server and sd-cli built for this GPU: put them on PATH or pass --llama-server and --sd-cli");
  process.exit(2);
}

// 2. A studio and the worker.
const dataDir = mkdtempSync(join(tmpdir(), "studio-gpu-check-"));
const outDir = resolve(args.out ?? join(dataDir, "outputs"));
mkdirSync(outDir, { recursive: true });
const studio = await startStudio({ host: "127.0.0.1", port: 0, dataDir, logLevel: "warn" }, { logger: createLogger("warn") });
const worker = Bun.spawn(
  [process.execPath, join(ROOT, "worker/main.ts"), "--server", studio.url, "--name", "gpu-check", "--gpus", args.gpus!,
    "--llama-server", llamaServer, "--sd-cli", sdCli, "--engines", "llama-cpp,sd-cpp", "--work-dir", join(dataDir, "work"), "--progress", "log"],
  { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
);
const logs: Array<Record<string, unknown>> = [];
void (async () => {
  let rest = "";
  for await (const chunk of worker.stdout) {
    const lines = (rest + new TextDecoder().decode(chunk)).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if ((entry.level as number) >= 40 || /GPU|room|memory|llama-server started|sd-cli started/.test(String(entry.msg)))
          console.log(`  worker: ${entry.msg}${entry.pid ? ` (pid ${entry.pid})` : ""}`);
      } catch {
        console.log(`  worker: ${line}`);
      }
    }
  }
})();
void new Response(worker.stderr).text().then((t) => t.trim() && console.error(t));

const transport = createConnectTransport({ baseUrl: studio.url, httpVersion: "2" });
const jobs = createClient(JobService, transport);
let code = 1;
try {
  // 3. The GPUs as the studio sees them.
  const deadline = Date.now() + 60_000;
  let listed = (await createClient(WorkerService, transport).listWorkers({})).workers;
  while (listed.length === 0 && Date.now() < deadline && worker.exitCode === null) {
    await Bun.sleep(200);
    listed = (await createClient(WorkerService, transport).listWorkers({})).workers;
  }
  if (listed.length === 0) throw new Error(`the worker did not connect (exit ${worker.exitCode})`);
  console.log("the studio's ListWorkers:");
  for (const g of listed[0]!.gpus) console.log(`  ${gpuSummary(g)}`);
  if (listed[0]!.gpus.length === 0) throw new Error("the worker reported no GPU to the studio");

  // 4. One text job, one image job, each engine looked for in the GPU's process list while it runs.
  const registry = createClient(RegistryService, transport);
  const own = async (name: string, file: string | undefined, fallback: string) => {
    if (!file) return fallback;
    const checked = checkModelSourceJson(JSON.parse(readFileSync(file, "utf8")));
    if (!checked.ok) throw new Error(`${file}: ${checked.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`);
    await registry.createModel({ name, source: modelSourceFromJson(checked.value) });
    return name;
  };
  const textModel = await own("gpu-check-text", args["text-source"], args["text-model"]!);
  const imageModel = await own("gpu-check-image", args["image-source"], args["image-model"]!);
  const text = await run("text", textModel, { kind: { case: "text", value: { prompt: "Name three primary colours.", maxTokens: 64 } } } as Task);
  const image = await run("image", imageModel, { kind: { case: "image", value: { prompt: "a lighthouse at dusk", batchCount: 1 } } } as Task);
  code = text && image ? 0 : 1;
  console.log(code === 0 ? "\nOK: both jobs ran on the GPU." : "\nNOT OK: see above.");
  console.log(`outputs in ${outDir}`);
} catch (err) {
  console.error(`gpu-check: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  worker.kill("SIGTERM");
  await worker.exited;
  await studio.stop();
  rmSync(join(dataDir, "studio.db"), { force: true });
}
process.exit(code);

/** Runs one job to its end; true when it succeeded and its engine process was seen on a GPU. */
async function run(kind: string, model: string, task: Task): Promise<boolean> {
  const started = performance.now();
  const job = (await jobs.createJob({ model, task, maxAttempts: 1 })).job!;
  console.log(`\n${kind} job ${job.id} on ${model} (GPU memory counted: ${job.vram ? `${formatBytes(Number(job.vram.bytes))}${job.vram.estimated ? ", estimated" : ""}` : "none"})`);
  const onGpu = new Map<number, number>();
  const watching = watchProcesses(onGpu);
  let last: Job | undefined;
  for await (const res of jobs.watchJobs({ jobIds: [job.id], includeSnapshot: true })) {
    if (!res.job) continue;
    last = res.job;
    if (TERMINAL.includes(last.status)) break;
  }
  watching.stop();
  await watching.done;
  // One more look once the job is done: a warm llama-server is still there (sd-cli has exited).
  await sample(onGpu);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const took = logs.find((l) => l.jobId === job.id && l.msg === "took an offer");
  const pids = logs.filter((l) => l.msg === "llama-server started" || (l.msg === "sd-cli started" && l.jobId === job.id)).map((l) => l.pid as number);
  const seen = pids.filter((p) => onGpu.has(p));
  console.log(`  ${JobStatus[last!.status]} in ${seconds} s${last!.error ? `: ${last!.error}` : ""}; placed on GPU ${took?.gpu ?? "?"}`);
  for (const pid of seen) console.log(`  engine pid ${pid} held up to ${formatBytes(onGpu.get(pid)!)} on the GPU`);
  // rocm-smi's JSON lists no processes here: on AMD the job's success and the worker's log are what there is.
  const checkable = inventory.vendor === "nvidia";
  if (checkable && seen.length === 0) console.log("  no engine process of this job showed in the GPU's process list: is the engine built for this GPU?");
  if (last!.status === JobStatus.SUCCEEDED)
    for (const o of last!.outputs) {
      const parts: Uint8Array[] = [];
      for await (const r of jobs.getJobOutput({ jobId: job.id, index: o.index })) parts.push(r.chunk);
      const path = join(outDir, outputFileName(job.id, o.index, o.mimeType));
      writeFileSync(path, Buffer.concat(parts));
      console.log(`  saved ${path}`);
    }
  return last!.status === JobStatus.SUCCEEDED && (!checkable || seen.length > 0);
}

/** Samples nvidia-smi's process list about five times a second while a job runs. */
function watchProcesses(into: Map<number, number>) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await sample(into);
      await Bun.sleep(200);
    }
  })();
  return { done, stop: () => void (stopped = true) };
}

/** One look at nvidia-smi's process list, keeping each pid's largest use. */
async function sample(into: Map<number, number>): Promise<void> {
  if (!tools.nvidiaSmi || inventory.vendor !== "nvidia") return;
  const r = await runTool(tools.nvidiaSmi, NVIDIA_APPS_QUERY, 5000).catch(() => undefined);
  if (r?.code === 0) for (const p of parseNvidiaApps(r.stdout)) into.set(p.pid, Math.max(into.get(p.pid) ?? 0, p.usedBytes ?? 0));
}
