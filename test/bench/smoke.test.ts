import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseFigures, type Figure } from "../../bench/lib/report.js";
import { realEngines } from "../helpers/real-engines.js";

const ROOT = join(import.meta.dir, "..", "..");

/**
 * Runs a benchmark script with its arguments as a child process; returns its exit code and output.
 * Past the deadline it gets SIGTERM (before the test's own timeout), which a benchmark turns into
 * stopping its children: redis-server, the studio and worker processes are not left behind.
 */
async function runBench(script: string, args: string[], deadlineMs = 50_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join(ROOT, "bench", script), ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGTERM"), deadlineMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A benchmark that failed is reported with the end of what it printed, which says why. */
function expectSuccess(run: { code: number; stdout: string; stderr: string }): void {
  if (run.code === 0) return;
  const end = (text: string) => text.trimEnd().split("\n").slice(-25).join("\n");
  throw new Error(`the benchmark exited with ${run.code}\n--- the end of its stdout:\n${end(run.stdout)}\n--- the end of its stderr:\n${end(run.stderr)}`);
}

/** The figures a benchmark printed; every one must be a finite number. */
function figuresOf(stdout: string, bench: string): Figure[] {
  const results = parseFigures(stdout).filter((r) => r.bench === bench);
  expect(results).toHaveLength(1);
  const figures = results[0]!.figures;
  for (const f of figures) expect({ metric: `${f.bench}: ${f.metric}`, finite: Number.isFinite(f.value) }).toEqual({ metric: `${f.bench}: ${f.metric}`, finite: true });
  return figures;
}

const metrics = (figures: Figure[]) => figures.map((f) => `${f.bench} | ${f.metric}`);

// Figures only: these runs are far too small to say anything about speed, so nothing asserts a time.
describe("benchmarks run small with --smoke and print their figures", () => {
  test("dispatch: Studio on SQLite, on PostgreSQL with one and two replicas, and BullMQ side by side", async () => {
    const run = await runBench("dispatch.ts", ["--smoke"]);
    expectSuccess(run);
    const { stdout } = run;
    const names = metrics(figuresOf(stdout, "dispatch"));
    for (const side of ["Studio", "Studio PG x1", "Studio PG x2", "BullMQ"]) {
      expect(names).toContain(`dispatch: ${side} | throughput end to end`);
      expect(names).toContain(`dispatch: ${side} | offer latency p99, idle workers`);
    }
    expect(names).toContain("dispatch: Studio / BullMQ | throughput ratio");
    expect(names).toContain("dispatch: Studio PG x2 / PG x1 | throughput scaling, one replica to two");
    expect(names).toContain("dispatch: Studio PG x2 | offer latency p99, created on A, idle worker on B");
    for (const cpu of ["Studio | studio CPU per job", "Studio PG x2 | CPU per job, studio A", "Studio PG x2 | CPU per job, studio B", "Studio PG x2 | CPU per job, postgres"])
      expect(names).toContain(`dispatch: ${cpu}`);
  }, 120_000);

  test("scale: simulated workers connected, RSS, idle CPU, offer latency", async () => {
    const run = await runBench("scale.ts", ["--smoke"]);
    expectSuccess(run);
    const { stdout } = run;
    const figures = figuresOf(stdout, "scale");
    const connected = figures.find((f) => f.metric === "workers connected (ListWorkers)");
    expect(connected?.value).toBe(20);
    expect(metrics(figures)).toEqual(
      expect.arrayContaining([
        "scale | studio RSS, workers connected, idle",
        "scale | studio CPU at idle",
        "scale | offer latency p99, jobs flowing",
      ]),
    );
  }, 60_000);

  test("worker start: exec to session, idle RSS (through run-all)", async () => {
    const run = await runBench("run-all.ts", ["--smoke", "--only", "worker-start"]);
    expectSuccess(run);
    const { stdout } = run;
    const names = metrics(figuresOf(stdout, "worker-start"));
    expect(names).toContain("worker start: from source (bun worker/main.ts) | exec to session established, median");
    expect(stdout).toContain("## Performance");
    expect(stdout).toContain("| worker start: from source (bun worker/main.ts) | idle RSS, median");
  }, 60_000);

  test.skipIf(!realEngines())("engine overhead: sd-cli and llama-server alone against the same jobs through the studio and the worker", async () => {
    const run = await runBench("engine-overhead.ts", ["--smoke"], 100_000);
    expectSuccess(run);
    const names = metrics(figuresOf(run.stdout, "engine-overhead"));
    for (const metric of [
      "image job: sd-cli direct, exec to exit, median",
      "image job: studio + worker, CreateJob to SUCCEEDED, median",
      "image job: (studio + worker CPU) / sd-cli CPU",
      "time to first token: llama-server direct (warm), median",
      "time to first token: studio + worker (warm server), CreateJob to the worker's first token, median",
      "time to first token as a WatchJobs client sees it (first progress with a token), median",
    ])
      expect(names).toContain(`engine overhead | ${metric}`);
  }, 120_000);

  test.skipIf(!realEngines())("openai stream: time to first token and tokens/s through the studio against llama-server direct, and the relay's ceiling", async () => {
    const run = await runBench("openai-stream.ts", ["--smoke"], 100_000);
    expectSuccess(run);
    const figures = figuresOf(run.stdout, "openai-stream");
    const names = metrics(figures);
    for (const metric of [
      "time to first token: llama-server direct (warm), median",
      "time to first token: through the studio (POST to the first content chunk), median",
      "time to first token: overhead of studio + worker (median difference)",
      "time to first token: overhead of studio + worker against the fixture (median difference)",
      "real llama-server: through the studio / direct",
      "relay ceiling: tokens/s through the studio",
      "relay ceiling: studio CPU per 1,000 tokens",
    ])
      expect(names).toContain(`openai stream | ${metric}`);
    // Goals are reported, not asserted (a smoke run is far too small); each goal figure carries one.
    expect(figures.filter((f) => f.goal !== undefined).map((f) => f.metric)).toEqual([
      "time to first token: overhead of studio + worker against the fixture (median difference)",
      "relay ceiling: tokens/s through the studio",
    ]);
  }, 120_000);

  test("download: ours against curl | openssl over HTTP and HTTPS, peak RSS, parts", async () => {
    const run = await runBench("download.ts", ["--smoke"]);
    expectSuccess(run);
    const figures = figuresOf(run.stdout, "download");
    const notes = (metric: string) => figures.filter((f) => f.metric === metric).map((f) => f.note);
    const ratio = "ours / curl | openssl dgst -sha256, same file, same run";
    expect(notes(ratio)).toEqual(["HTTP, 8 MiB", "HTTPS, 8 MiB", "HTTP, 32 MiB", "HTTPS, 32 MiB"]);
    expect(figures.filter((f) => f.metric === ratio).every((f) => f.unit === "x")).toBe(true);
    expect(notes("CPU per GiB, ours / curl+openssl")).toEqual(["HTTP, 32 MiB", "HTTPS, 32 MiB"]);
    expect(metrics(figures)).toContain("download | 4 parts / 1 stream against a per-connection limit");
  }, 60_000);

  test("run-all refuses an unknown benchmark name", async () => {
    const { code, stderr } = await runBench("run-all.ts", ["--only", "nope"]);
    expect(code).toBe(2);
    expect(stderr).toContain("unknown benchmark nope");
  });
});
