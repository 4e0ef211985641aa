#!/usr/bin/env bun
/**
 * Download benchmark (issue 5): our DownloadManager against the fastest standard
 * pipeline, `curl -s URL | openssl dgst -sha256`, from a private nginx on
 * loopback, side by side in one run; plus `openssl dgst -sha256 FILE` on the
 * file on disk (the hashing limit), our peak RSS, and parallel ranges against a
 * per-connection rate limit (nginx limit_rate).
 *
 *   bun bench/download.ts [--size-mib N] [--smoke]
 *
 * --smoke runs small sizes once each (figures only, no assertions on time).
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startNginx } from "./lib/nginx-server.js";

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
const sizeArg = args.indexOf("--size-mib");
const sizes = sizeArg >= 0 ? [Number(args[sizeArg + 1])] : smoke ? [8, 32] : [100, 1024];
if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error("--size-mib needs a positive whole number");
const reps = smoke ? 1 : 3;
// nginx lets each request send one second's worth at once before limit_rate applies; the sizes keep that burst small.
const limited = smoke ? { sizeMiB: 8, rate: "2m" } : { sizeMiB: 256, rate: "16m" };

interface Timed {
  ms: number;
  /** user + system CPU time of the process(es). */
  cpuMs: number;
  sha256: string;
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

/** curl's stdout piped straight into openssl's stdin (no shell: both are spawned with argv arrays). */
async function curlPipeOpenssl(url: string): Promise<Timed> {
  const t0 = performance.now();
  const curl = Bun.spawn(["curl", "-s", "--fail", url], { stdout: "pipe", stderr: "inherit" });
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

/** Our DownloadManager in a child process; returns its own timing of ensure() and its peak RSS. */
async function ours(url: string, sha256: string, work: string, parts: number, threshold: number): Promise<Timed & { peakRssBytes: number }> {
  const cacheDir = await fs.mkdtemp(path.join(work, "cache-"));
  try {
    const proc = Bun.spawn([process.execPath, path.join(import.meta.dir, "lib/download-child.ts"), cacheDir, url, sha256, String(parts), String(threshold)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    if (code !== 0) throw new Error(`download child exited ${code}`);
    return JSON.parse(out.trim().split("\n").at(-1)!);
  } finally {
    await fs.rm(cacheDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const fmt = (x: number, digits = 0) => x.toFixed(digits);

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "bench-download-"));
  const data = path.join(work, "data");
  await fs.mkdir(data);
  const nginx = await startNginx(data, work, { limitRate: limited.rate });
  const rows: string[] = [];
  const limitedRows: string[] = [];
  try {
    for (const sizeMiB of sizes) {
      const size = sizeMiB * MiB;
      const name = `file-${sizeMiB}.bin`;
      const sha = await makeFile(path.join(data, name), size);
      const url = `${nginx.origin}/${name}`;
      const a: number[] = [], b: number[] = [], c: number[] = [], rss: number[] = [], cpuA: number[] = [], cpuB: number[] = [];
      for (let i = 0; i < reps; i++) {
        const pipe = await curlPipeOpenssl(url);
        const us = await ours(url, sha, work, 1, Number.MAX_SAFE_INTEGER);
        const hashOnly = await opensslFile(path.join(data, name));
        for (const r of [pipe, us, hashOnly]) if (r.sha256 !== sha) throw new Error(`digest mismatch: ${r.sha256} != ${sha}`);
        a.push(mbps(size, pipe.ms));
        b.push(mbps(size, us.ms));
        c.push(mbps(size, hashOnly.ms));
        rss.push(us.peakRssBytes);
        cpuA.push(pipe.cpuMs / (size / 2 ** 30));
        cpuB.push(us.cpuMs / (size / 2 ** 30));
        console.error(`${sizeMiB} MiB run ${i + 1}: curl|openssl ${fmt(a.at(-1)!)} MB/s, ours ${fmt(b.at(-1)!)} MB/s, openssl file ${fmt(c.at(-1)!)} MB/s, our peak RSS ${fmt(us.peakRssBytes / 1e6)} MB, CPU ms/GiB pipeline ${fmt(cpuA.at(-1)!)} ours ${fmt(cpuB.at(-1)!)}`);
      }
      const [ma, mb, mc] = [median(a), median(b), median(c)];
      rows.push(`| ${sizeMiB} MiB | ${fmt(ma)} | ${fmt(mb)} | ${fmt(mb / ma, 2)} | ${fmt(mc)} | ${fmt(mb / mc, 2)} | ${fmt(Math.max(...rss) / 1e6)} | ${fmt(median(cpuA))} | ${fmt(median(cpuB))} |`);
      await fs.rm(path.join(data, name));
    }
    const size = limited.sizeMiB * MiB;
    const name = `limited-${limited.sizeMiB}.bin`;
    const sha = await makeFile(path.join(data, name), size);
    const url = `${nginx.origin}/limited/${name}`;
    const one = await ours(url, sha, work, 1, Number.MAX_SAFE_INTEGER);
    const four = await ours(url, sha, work, 4, MiB);
    for (const r of [one, four]) if (r.sha256 !== sha) throw new Error(`digest mismatch: ${r.sha256} != ${sha}`);
    const [m1, m4] = [mbps(size, one.ms), mbps(size, four.ms)];
    limitedRows.push(`| ${limited.sizeMiB} MiB | ${limited.rate}B/s per connection | ${fmt(m1, 1)} | ${fmt(m4, 1)} | ${fmt(m4 / m1, 2)} |`);
  } finally {
    await nginx.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const load = os.loadavg()[0]!.toFixed(1);
  console.log(`Download benchmark (${smoke ? "smoke" : `median of ${reps}`}; nginx on loopback; ${os.cpus().length} × ${cpu}; load average ${load}; MB = 10^6 bytes)

| size | curl \\| openssl MB/s | ours MB/s (1 stream, hashed + written + fsync) | ours / pipeline | openssl on file MB/s | ours / hashing limit | our peak RSS MB | CPU ms/GiB curl+openssl | CPU ms/GiB ours |
|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

| size | server limit | ours, 1 stream MB/s | ours, 4 parts MB/s | 4 parts / 1 stream |
|---|---|---|---|---|
${limitedRows.join("\n")}`);
}

await main();
