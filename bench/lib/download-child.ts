#!/usr/bin/env bun
/**
 * One measured download for bench/download.ts, in its own process so its peak
 * RSS (VmHWM) and CPU are ours alone. Prints one JSON line:
 * { ms, cpuMs, sha256, sizeBytes, peakRssBytes, threadsCpuMs }
 * (cpuMs: user + system CPU of the whole process during ensure(); threadsCpuMs:
 * the same split by thread, from /proc/self/task).
 *
 * argv: <cacheDir> <url> <sha256> <parts> <partThresholdBytes>
 * HTTPS: trust the benchmark's self-signed certificate with NODE_EXTRA_CA_CERTS.
 */
import { create } from "@bufbuild/protobuf";
import { readdirSync, readFileSync } from "node:fs";
import { ModelFileRole, ModelFileSchema } from "../../gen/studio/v1/model_pb.js";
import { DownloadManager } from "../../worker/download/index.js";

const [cacheDir, url, sha256, parts, threshold] = process.argv.slice(2);
if (!cacheDir || !url || !sha256 || !parts || !threshold) {
  console.error("usage: download-child.ts <cacheDir> <url> <sha256> <parts> <partThresholdBytes>");
  process.exit(2);
}

/** Linux's USER_HZ: /proc counts CPU time in these ticks. */
const TICK_MS = 10;

/** CPU ms (user + system) of each live thread, keyed by thread id, with its name. */
function threadTimes(): Map<string, { name: string; ms: number }> {
  const out = new Map<string, { name: string; ms: number }>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const name = tid === String(process.pid) ? "main (JavaScript)" : readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      out.set(tid, { name, ms: (Number(fields[11]) + Number(fields[12])) * TICK_MS });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Threads grouped by what they do in Bun: "Bun Pool 3" and "Bun Pool 0" are one pool. */
function group(name: string): string {
  if (name.startsWith("Bun Pool")) return "file I/O pool";
  if (name === "HTTP Client") return "fetch (HTTP client)";
  if (name === "Worker") return "hash thread";
  if (name === "main (JavaScript)") return name;
  return "other (GC, JIT, allocator)";
}

const dm = new DownloadManager({ cacheDir, parts: Number(parts), partThresholdBytes: Number(threshold) });
const file = create(ModelFileSchema, { role: ModelFileRole.MODEL, url, filename: "bench.bin", sha256 });
const before = threadTimes();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const cached = await dm.ensure(file);
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const after = threadTimes();
const cpuMs = (cpu.user + cpu.system) / 1000;
const threadsCpuMs: Record<string, number> = {};
let counted = 0;
for (const [tid, t] of after) {
  const used = t.ms - (before.get(tid)?.ms ?? 0);
  threadsCpuMs[group(t.name)] = (threadsCpuMs[group(t.name)] ?? 0) + used;
  counted += used;
}
// Threads that ended during the download are in the process total only.
if (cpuMs - counted > TICK_MS) threadsCpuMs["ended threads"] = cpuMs - counted;
cached.release();
const hwm = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
console.log(JSON.stringify({ ms, cpuMs, sha256: cached.sha256, sizeBytes: cached.sizeBytes, peakRssBytes: Number(hwm?.[1] ?? 0) * 1024, threadsCpuMs }));
