#!/usr/bin/env bun
/**
 * Download benchmark (issues 5 and 21): our DownloadManager against the fastest
 * standard pipeline, `curl URL | openssl dgst -sha256`, from a private nginx on
 * loopback over plain HTTP and over HTTPS (a self-signed certificate: curl runs
 * with -k, ours trusts it through NODE_EXTRA_CA_CERTS and verifies it), side by
 * side in one run: each repetition runs the pipeline and then ours on the same
 * file, and each ratio is the median of the per-repetition ratios. Also
 * `openssl dgst -sha256 FILE` on the file on disk (the hashing limit), our peak
 * RSS at each size, our CPU per GiB split by thread, and parallel ranges against
 * a per-connection rate limit (nginx limit_rate).
 *
 *   bun bench/download.ts [--smoke] [--sizes 100,1024,4096] [--reps N] [--schemes http,https]
 *
 * --smoke runs small sizes once each (figures only, no assertions on time).
 * Ends with a BENCH_RESULT line (bench/lib/report.ts).
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { exitOnSignals } from "./lib/child.js";
import { loadAverage, machineLine } from "./lib/machine.js";
import { startNginx, type NginxServer } from "./lib/nginx-server.js";
import { emitFigures, goal, markdownTable, type Figure } from "./lib/report.js";

exitOnSignals();
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    sizes: { type: "string" },
    reps: { type: "string" },
    schemes: { type: "string" },
  },
});
const smoke = args.smoke;
const sizes = (args.sizes ?? (smoke ? "8,32" : "100,1024,4096")).split(",").map(Number);
if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error("--sizes takes positive whole numbers of MiB, comma-separated");
const repsArg = args.reps === undefined ? undefined : Number(args.reps);
if (repsArg !== undefined && !(Number.isInteger(repsArg) && repsArg > 0)) throw new Error("--reps takes a positive whole number");
/** Repetitions per size: the largest size once (it is there to show memory stays flat), the others three times. */
const repsFor = (sizeMiB: number) => repsArg ?? (smoke || (sizeMiB > 1024 && sizes.length > 1) ? 1 : 3);
const schemes = (args.schemes ?? "http,https").split(",") as Scheme[];
if (schemes.some((s) => s !== "http" && s !== "https")) throw new Error("--schemes takes http and/or https");
/** The size the goals are stated for. */
const GOAL_MIB = smoke ? sizes.at(-1)! : 1024;
// nginx lets each request send one second's worth at once before limit_rate applies; the sizes keep that burst small.
const limited = smoke ? { sizeMiB: 8, rate: "2m" } : { sizeMiB: 256, rate: "16m" };

type Scheme = "http" | "https";

interface Timed {
  ms: number;
  /** user + system CPU time of the process(es). */
  cpuMs: number;
  sha256: string;
}

interface Ours extends Timed {
  peakRssBytes: number;
  threadsCpuMs: Record<string, number>;
}

const cpuMsOf = (p: { resourceUsage(): { cpuTime: { total: bigint } } | undefined }) => Number(p.resourceUsage()?.cpuTime.total ?? 0n) / 1000;

/** Writes `size` pseudo-random bytes (a 16 MiB random block repeated) and returns their sha256. */
async function makeFile(file: string, size: number): Promise<string> {
  const block = randomBytes(Math.min(16 * MiB, size));
  const hash = createHash("sha256");
  const handle = await fs.open(file, "w");
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(block.byteLength, size - done);
      const chunk = block.subarray(0, n);
      hash.update(chunk);
      await handle.write(chunk, 0, n, done);
      done += n;
    }
  } finally {
    await handle.close();
  }
  return hash.digest("hex");
}

function parseDigest(out: string): string {
  const m = /([0-9a-f]{64})/.exec(out);
  if (!m) throw new Error(`no digest in ${JSON.stringify(out)}`);
  return m[1]!;
}

/** curl's stdout piped straight into openssl's stdin (no shell: both are spawned with argv arrays); -k for the self-signed certificate. */
async function curlPipeOpenssl(url: string): Promise<Timed> {
  const t0 = performance.now();
  const curl = Bun.spawn(["curl", "-s", "-k", "--fail", url], { stdout: "pipe", stderr: "inherit" });
  const openssl = Bun.spawn(["openssl", "dgst", "-sha256", "-r"], { stdin: curl.stdout, stdout: "pipe", stderr: "inherit" });
  const [out, curlCode, sslCode] = await Promise.all([new Response(openssl.stdout).text(), curl.exited, openssl.exited]);
  const ms = performance.now() - t0;
  if (curlCode !== 0 || sslCode !== 0) throw new Error(`curl exited ${curlCode}, openssl exited ${sslCode}`);
  return { ms, cpuMs: cpuMsOf(curl) + cpuMsOf(openssl), sha256: parseDigest(out) };
}

async function opensslFile(file: string): Promise<Timed> {
  const t0 = performance.now();
  const proc = Bun.spawn(["openssl", "dgst", "-sha256", "-r", file], { stdout: "pipe", stderr: "inherit" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`openssl exited ${code}`);
  return { ms: performance.now() - t0, cpuMs: cpuMsOf(proc), sha256: parseDigest(out) };
}

/** Our DownloadManager in a child process (bench/lib/download-child.ts); returns its own timing of ensure(), its CPU and its peak RSS. */
async function ours(nginx: NginxServer, url: string, work: string, sha256: string, parts: number, threshold: number): Promise<Ours> {
  const cacheDir = await fs.mkdtemp(path.join(work, "cache-"));
  try {
    const proc = Bun.spawn([process.execPath, path.join(import.meta.dir, "lib/download-child.ts"), cacheDir, url, sha256, String(parts), String(threshold)], {
      stdout: "pipe",
      stderr: "inherit",
      env: { ...process.env, NODE_EXTRA_CA_CERTS: nginx.certFile },
    });
    const killOnExit = () => proc.kill("SIGKILL");
    process.once("exit", killOnExit);
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    process.off("exit", killOnExit);
    if (code !== 0) throw new Error(`download child exited ${code}`);
    return JSON.parse(out.trim().split("\n").at(-1)!) as Ours;
  } finally {
    await fs.rm(cacheDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const fixed = (x: number, digits = 0) => x.toFixed(digits);
const sizeName = (mib: number) => (mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`);

interface Row {
  scheme: Scheme;
  sizeMiB: number;
  reps: number;
  pipeMBps: number;
  oursMBps: number;
  /** Median of the per-repetition ratios ours / pipeline (each pair ran back to back). */
  ratio: number;
  hashMBps: number;
  ratioToHash: number;
  peakRssMB: number;
  pipeCpuMsPerGiB: number;
  oursCpuMsPerGiB: number;
  threadsMsPerGiB: Record<string, number>;
}

async function measureSize(nginx: NginxServer, data: string, work: string, sizeMiB: number): Promise<Row[]> {
  const size = sizeMiB * MiB;
  const name = `file-${sizeMiB}.bin`;
  const sha = await makeFile(path.join(data, name), size);
  const reps = repsFor(sizeMiB);
  const runs = new Map<Scheme, { pipe: Timed; us: Ours; hash: Timed }[]>(schemes.map((s) => [s, []]));
  try {
    for (let i = 0; i < reps; i++) {
      for (const scheme of schemes) {
        const url = `${scheme === "https" ? nginx.tlsOrigin : nginx.origin}/${name}`;
        const pipe = await curlPipeOpenssl(url);
        const us = await ours(nginx, url, work, sha, 1, Number.MAX_SAFE_INTEGER);
        const hash = await opensslFile(path.join(data, name));
        for (const r of [pipe, us, hash]) if (r.sha256 !== sha) throw new Error(`digest mismatch: ${r.sha256} != ${sha}`);
        runs.get(scheme)!.push({ pipe, us, hash });
        const perGiB = (ms: number) => fixed(ms / (size / GiB));
        console.error(
          `${scheme} ${sizeName(sizeMiB)} run ${i + 1}/${reps}: curl|openssl ${fixed(mbps(size, pipe.ms))} MB/s, ours ${fixed(mbps(size, us.ms))} MB/s ` +
            `(${fixed(pipe.ms / us.ms, 2)}x), openssl on file ${fixed(mbps(size, hash.ms))} MB/s, our peak RSS ${fixed(us.peakRssBytes / 1e6)} MB, ` +
            `CPU ms/GiB curl+openssl ${perGiB(pipe.cpuMs)} ours ${perGiB(us.cpuMs)}; load average ${loadAverage()}`,
        );
      }
    }
  } finally {
    await fs.rm(path.join(data, name), { force: true });
  }
  return schemes.map((scheme) => {
    const rs = runs.get(scheme)!;
    const perGiB = (ms: number) => ms / (size / GiB);
    const threads: Record<string, number> = {};
    for (const key of new Set(rs.flatMap((r) => Object.keys(r.us.threadsCpuMs)))) threads[key] = perGiB(median(rs.map((r) => r.us.threadsCpuMs[key] ?? 0)));
    const oursMBps = median(rs.map((r) => mbps(size, r.us.ms)));
    const hashMBps = median(rs.map((r) => mbps(size, r.hash.ms)));
    return {
      scheme,
      sizeMiB,
      reps,
      pipeMBps: median(rs.map((r) => mbps(size, r.pipe.ms))),
      oursMBps,
      ratio: median(rs.map((r) => r.pipe.ms / r.us.ms)),
      hashMBps,
      ratioToHash: median(rs.map((r) => r.hash.ms / r.us.ms)),
      peakRssMB: Math.max(...rs.map((r) => r.us.peakRssBytes / 1e6)),
      pipeCpuMsPerGiB: median(rs.map((r) => perGiB(r.pipe.cpuMs))),
      oursCpuMsPerGiB: median(rs.map((r) => perGiB(r.us.cpuMs))),
      threadsMsPerGiB: threads,
    };
  });
}

async function measureParts(nginx: NginxServer, data: string, work: string) {
  const size = limited.sizeMiB * MiB;
  const name = `limited-${limited.sizeMiB}.bin`;
  const sha = await makeFile(path.join(data, name), size);
  try {
    const limitedUrl = `${nginx.origin}/limited/${name}`;
    const one = await ours(nginx, limitedUrl, work, sha, 1, Number.MAX_SAFE_INTEGER);
    const four = await ours(nginx, limitedUrl, work, sha, 4, MiB);
    // The worker's default for large files on a server without a limit: 4 parts, 3/4 of the file hashed by reading it back.
    const freeUrl = `${nginx.origin}/${name}`;
    const oneFree = await ours(nginx, freeUrl, work, sha, 1, Number.MAX_SAFE_INTEGER);
    const fourFree = await ours(nginx, freeUrl, work, sha, 4, MiB);
    for (const r of [one, four, oneFree, fourFree]) if (r.sha256 !== sha) throw new Error(`digest mismatch: ${r.sha256} != ${sha}`);
    const perGiB = (r: Ours) => r.cpuMs / (size / GiB);
    return {
      one: mbps(size, one.ms),
      four: mbps(size, four.ms),
      fourRssMB: Math.max(four.peakRssBytes, fourFree.peakRssBytes) / 1e6,
      oneFree: mbps(size, oneFree.ms),
      fourFree: mbps(size, fourFree.ms),
      oneFreeCpu: perGiB(oneFree),
      fourFreeCpu: perGiB(fourFree),
    };
  } finally {
    await fs.rm(path.join(data, name), { force: true });
  }
}

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "bench-download-"));
  const data = path.join(work, "data");
  await fs.mkdir(data);
  const loadBefore = loadAverage();
  const t0 = performance.now();
  const nginx = await startNginx(data, work, { limitRate: limited.rate });
  const rows: Row[] = [];
  let parts: Awaited<ReturnType<typeof measureParts>>;
  try {
    for (const sizeMiB of sizes) rows.push(...(await measureSize(nginx, data, work, sizeMiB)));
    parts = await measureParts(nginx, data, work);
  } finally {
    await nginx.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
  const minutes = (performance.now() - t0) / 60_000;

  console.log(`Download benchmark (${smoke ? "smoke" : "medians"}; nginx on loopback; ${machineLine()}; load average ${loadBefore} before, ${loadAverage()} after, ${fixed(minutes, 1)} min; MB = 10^6 bytes)\n`);
  console.log(
    markdownTable(
      ["scheme", "size", "runs", "curl \\| openssl MB/s", "ours MB/s (1 stream, hashed + written + fsync)", "ours / curl \\| openssl", "openssl on file MB/s", "ours / hashing limit", "our peak RSS MB", "CPU ms/GiB curl+openssl", "CPU ms/GiB ours"],
      rows.map((r) => [
        r.scheme.toUpperCase(),
        sizeName(r.sizeMiB),
        String(r.reps),
        fixed(r.pipeMBps),
        fixed(r.oursMBps),
        fixed(r.ratio, 2),
        fixed(r.hashMBps),
        fixed(r.ratioToHash, 2),
        fixed(r.peakRssMB),
        fixed(r.pipeCpuMsPerGiB),
        fixed(r.oursCpuMsPerGiB),
      ]),
    ),
  );
  console.log();
  console.log(
    markdownTable(
      ["size", "server limit", "ours, 1 stream MB/s", "ours, 4 parts MB/s", "4 parts / 1 stream", "CPU ms/GiB 1 stream / 4 parts", "peak RSS MB, 4 parts"],
      [
        [`${limited.sizeMiB} MiB`, `${limited.rate}B/s per connection`, fixed(parts.one, 1), fixed(parts.four, 1), fixed(parts.four / parts.one, 2), "", fixed(parts.fourRssMB)],
        [`${limited.sizeMiB} MiB`, "none", fixed(parts.oneFree), fixed(parts.fourFree), fixed(parts.fourFree / parts.oneFree, 2), `${fixed(parts.oneFreeCpu)} / ${fixed(parts.fourFreeCpu)}`, ""],
      ],
    ),
  );
  const goalRows = rows.filter((r) => r.sizeMiB === GOAL_MIB);
  const threadNames = [...new Set(goalRows.flatMap((r) => Object.keys(r.threadsMsPerGiB)))].sort();
  console.log(`\nOur CPU ms per GiB by thread, ${sizeName(GOAL_MIB)} (medians):\n`);
  console.log(
    markdownTable(
      ["scheme", ...threadNames, "whole process"],
      goalRows.map((r) => [r.scheme.toUpperCase(), ...threadNames.map((t) => fixed(r.threadsMsPerGiB[t] ?? 0)), fixed(r.oursCpuMsPerGiB)]),
    ),
  );

  const figures: Figure[] = [];
  const bench = "download";
  for (const r of rows) {
    const note = `${r.scheme.toUpperCase()}, ${sizeName(r.sizeMiB)}`;
    const atGoal = r.sizeMiB === GOAL_MIB;
    figures.push({ bench, metric: "ours / curl | openssl dgst -sha256, same file, same run", value: r.ratio, unit: "x", note, ...(atGoal ? goal(">=", 1, r.ratio) : {}) });
    if (atGoal) {
      figures.push({ bench, metric: "ours", value: r.oursMBps, unit: "MB/s", note });
      figures.push({ bench, metric: "curl | openssl dgst -sha256", value: r.pipeMBps, unit: "MB/s", note });
      const cpuRatio = r.oursCpuMsPerGiB / r.pipeCpuMsPerGiB;
      figures.push({ bench, metric: "CPU per GiB, ours / curl+openssl", value: cpuRatio, unit: "x", note, ...goal("<=", 1, cpuRatio) });
      figures.push({ bench, metric: "CPU per GiB, ours", value: r.oursCpuMsPerGiB, unit: "ms", note });
    }
    figures.push({ bench, metric: "our peak RSS", value: r.peakRssMB, unit: "MB", note, ...goal("<", 150, r.peakRssMB) });
  }
  for (const scheme of schemes) {
    const mine = rows.filter((r) => r.scheme === scheme);
    if (mine.length < 2) continue;
    const [first, last] = [mine[0]!, mine.at(-1)!];
    figures.push({
      bench,
      metric: `peak RSS growth from ${sizeName(first.sizeMiB)} to ${sizeName(last.sizeMiB)}`,
      value: last.peakRssMB - first.peakRssMB,
      unit: "MB",
      note: scheme.toUpperCase(),
    });
  }
  const partsRatio = parts.four / parts.one;
  figures.push({ bench, metric: "4 parts / 1 stream against a per-connection limit", value: partsRatio, unit: "x", note: `${limited.sizeMiB} MiB, ${limited.rate}B/s per connection`, ...goal(">=", 3, partsRatio) });
  figures.push({ bench, metric: "our peak RSS, 4 parts", value: parts.fourRssMB, unit: "MB", note: `${limited.sizeMiB} MiB`, ...goal("<", 150, parts.fourRssMB) });
  figures.push({ bench, metric: "4 parts / 1 stream, no server limit", value: parts.fourFree / parts.oneFree, unit: "x", note: `HTTP, ${limited.sizeMiB} MiB` });
  emitFigures(bench, figures, { machine: machineLine(), loadBefore, loadAfter: loadAverage() });
}

await main();
