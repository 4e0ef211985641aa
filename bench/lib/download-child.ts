#!/usr/bin/env bun
/**
 * One measured download for bench/download.ts, in its own process so its peak
 * RSS (VmHWM) is ours alone. Prints one JSON line:
 * { ms, cpuMs, sha256, sizeBytes, peakRssBytes } (cpuMs: user + system CPU of ensure()).
 *
 * argv: <cacheDir> <url> <sha256> <parts> <partThresholdBytes>
 */
import { create } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { ModelFileRole, ModelFileSchema } from "../../gen/studio/v1/model_pb.js";
import { DownloadManager } from "../../worker/download/index.js";

const [cacheDir, url, sha256, parts, threshold] = process.argv.slice(2);
if (!cacheDir || !url || !sha256 || !parts || !threshold) {
  console.error("usage: download-child.ts <cacheDir> <url> <sha256> <parts> <partThresholdBytes>");
  process.exit(2);
}
const dm = new DownloadManager({ cacheDir, parts: Number(parts), partThresholdBytes: Number(threshold) });
const file = create(ModelFileSchema, { role: ModelFileRole.MODEL, url, filename: "bench.bin", sha256 });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const cached = await dm.ensure(file);
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const hwm = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, sha256: cached.sha256, sizeBytes: cached.sizeBytes, peakRssBytes: Number(hwm?.[1] ?? 0) * 1024 }));
