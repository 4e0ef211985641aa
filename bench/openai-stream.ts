#!/usr/bin/env bun
/**
 * Token streaming through the studio (issue 18): what an OpenAI client gets through the studio and
 * the worker against the same request made to the engine directly, side by side in one run.
 *
 * - time to first token: a streamed POST /v1/chat/completions (a few tokens, a fixed seed) to the
 *   studio, which queues a job, offers it to the compiled worker, whose request to its warm
 *   llama-server streams back through the worker's session and the studio; against the same
 *   request to that llama-server directly (its port from the worker's log). Request sent to the
 *   first content chunk at the client, alternating sides; the overhead is the difference of medians.
 *   The same against the fake llama-server fixture (test/fixtures), which answers at once: the
 *   issue's measure of what the path adds, with no engine competing for the two cores.
 * - tokens per second: one long answer (2,000 tokens) both ways, from the POST to the last
 *   content chunk, counted with the engine's usage; and the relay's ceiling, with the fake
 *   llama-server fixture (test/fixtures) sending tokens as fast as it can (the real tiny model
 *   makes 550 to 2,900 tokens/s on two cores, so it, not the relay, would be the limit). The
 *   studio's and the worker's CPU per 1,000 tokens show how far from its limit the relay runs.
 *
 *   bun bench/openai-stream.ts [--runs 40] [--long-tokens 2000] [--relay-tokens 40000] [--smoke]
 *
 * Needs the engines (STUDIO_TEST_ENGINES, as the tests do) and builds dist/studio-worker each run.
 * Both sides use the same client code (fetch, SSE read line by line, JSON per event).
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ModelEngine, ModelFileRole } from "../gen/studio/v1/model_pb.js";
import { RegistryService } from "../gen/studio/v1/registry_service_pb.js";
import { buildWorker } from "../scripts/worker-binary.js";
import { startModelServer } from "../test/helpers/model-server.js";
import { realEngines, type ModelFileOnDisk } from "../test/helpers/real-engines.js";
import { readLines } from "../test/helpers/read-lines.js";
import { exitOnSignals } from "./lib/child.js";
import { cpuSeconds } from "./lib/proc-stats.js";
import { emitFigures, figureRecorder, goal, type Figure } from "./lib/report.js";
import { summarize } from "./lib/stats.js";
import { startStudioProcess } from "./lib/studio-process.js";

exitOnSignals();
const ROOT = join(import.meta.dir, "..");
const { values: args } = parseArgs({
  options: { smoke: { type: "boolean", default: false }, runs: { type: "string" }, "relay-tokens": { type: "string" }, "long-tokens": { type: "string" } },
});
const smoke = args.smoke!;
const runs = Number(args.runs ?? (smoke ? 3 : 40));
const relayTokens = Number(args["relay-tokens"] ?? (smoke ? 2000 : 40_000));
const longTokens = Number(args["long-tokens"] ?? (smoke ? 200 : 2000));
const longRuns = smoke ? 1 : 4;
const engines = realEngines();
if (!engines) {
  console.error("openai-stream: STUDIO_TEST_ENGINES is unset: it names the directory with llama-server and the tiny models");
  process.exit(2);
}
// Built every run (2 s): a dist/studio-worker left from older sources would measure old code.
const workerBinary = buildWorker();

const TTFT_TOKENS = 8;
const scratch = mkdtempSync(join(tmpdir(), "openai-stream-"));
const models = (["tiny-llama.gguf", "tiny-llama-long.gguf"] as const).map((n) => engines.model(n));
const files = startModelServer(models);
const studio = await startStudioProcess({ logLevel: "warn" });
const registry = createClient(RegistryService, createConnectTransport({ baseUrl: studio.url, httpVersion: "2" }));
await registry.createModel({ name: "tiny-llama", source: { engine: ModelEngine.LLAMA_CPP, files: [files.file(ModelFileRole.MODEL, models[0]!)] } });
await registry.createModel({ name: "tiny-llama-long", source: { engine: ModelEngine.LLAMA_CPP, files: [files.file(ModelFileRole.MODEL, models[1]!)] } });

/** The compiled worker with one llama-server program; resolves once connected, with the port of each llama-server it starts. */
async function startWorker(name: string, llamaServer: string, env: Record<string, string> = {}) {
  const proc = Bun.spawn(
    [workerBinary, "--server", studio.url, "--name", name, "--engines", "llama-cpp", "--llama-server", llamaServer,
      "--cache-dir", join(scratch, "cache"), "--work-dir", join(scratch, `work-${name}`), "--progress", "log", "--log-level", "info", "--llama-idle-seconds", "600",
      // Engines get a cleaned environment: the fixture's settings are named to be passed on.
      ...(Object.keys(env).length > 0 ? ["--engine-env", Object.keys(env).join(",")] : [])],
    { stdout: "pipe", stderr: "inherit", env: { ...process.env, ...env } },
  );
  const kill = () => proc.kill("SIGKILL");
  process.once("exit", kill);
  const ports = new Map<string, number>();
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  void (async () => {
    for await (const line of readLines(proc.stdout)) {
      if (line.includes('"connected to the studio"')) connected();
      if (line.includes('"llama-server started"')) {
        const entry = JSON.parse(line) as { model: string; port: number };
        ports.set(entry.model, entry.port);
      }
    }
  })();
  await ready;
  return {
    pid: proc.pid,
    /** The port of the llama-server serving a model file (started by a first job). */
    portFor: (m: ModelFileOnDisk) => [...ports].find(([model]) => model.includes(m.sha256))?.[1],
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      process.off("exit", kill);
    },
  };
}

interface Streamed {
  firstMs: number;
  lastMs: number;
  tokens: number;
  text: string;
}

/**
 * One streamed chat request (OpenAI's API: the studio's or llama-server's own): when the first and
 * the last content arrived, and the tokens the engine counted (usage).
 */
async function stream(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Streamed> {
  const start = performance.now();
  const res = await fetch(url, {
    method: "POST",
    // A new connection each request on both sides: llama-server closes one after a streamed answer.
    keepalive: false,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
  let firstMs = Number.NaN;
  let lastMs = Number.NaN;
  let tokens = 0;
  let text = "";
  for await (const line of readLines(res.body)) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const event = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string | null } }>; usage?: { completion_tokens: number }; error?: unknown };
    if (event.error) throw new Error(`${url}: ${JSON.stringify(event.error)}`);
    const content = event.choices?.[0]?.delta?.content;
    if (content) {
      const now = performance.now() - start;
      if (Number.isNaN(firstMs)) firstMs = now;
      lastMs = now;
      text += content;
    }
    if (event.usage) tokens = event.usage.completion_tokens;
  }
  return { firstMs, lastMs, tokens, text };
}

const chat = (maxTokens: number | undefined, prompt: string) => ({
  messages: [{ role: "user", content: prompt }],
  seed: 7,
  ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
});
const viaStudio = (model: string, body: Record<string, unknown>) => stream(`${studio.url}/v1/chat/completions`, { model, ...body });
const direct = (port: number, body: Record<string, unknown>) => stream(`http://127.0.0.1:${port}/v1/chat/completions`, body);
// From the POST to the last token: through the studio the first chunks may come batched, so a
// first-to-last window would flatter it; end to end, both sides pay their own start.
const rate = (s: Streamed) => (s.tokens * 1000) / s.lastMs;

const figures: Figure[] = [];
const add = figureRecorder(figures, "openai stream");

try {
  // Real llama-server: time to first token, and a long answer.
  const real = await startWorker("bench-real", engines.llamaServer);
  await viaStudio("tiny-llama", chat(4, "warm up"));
  await viaStudio("tiny-llama-long", chat(4, "warm up"));
  const port = real.portFor(models[0]!)!;
  const longPort = real.portFor(models[1]!)!;
  await direct(port, chat(4, "warm up"));
  const ttftDirect: number[] = [];
  const ttftStudio: number[] = [];
  let ttftCpu = { studio: 0, worker: 0 };
  for (let i = 0; i < runs; i++) {
    // Alternating which side goes first, so that load drifting on a shared machine hits both alike.
    const prompt = `tell me a story, ${i}`;
    if (i % 2 === 0) ttftDirect.push((await direct(port, chat(TTFT_TOKENS, prompt))).firstMs);
    const cpuBefore = { studio: cpuSeconds(studio.pid), worker: cpuSeconds(real.pid) };
    const s = await viaStudio("tiny-llama", chat(TTFT_TOKENS, prompt));
    ttftCpu = { studio: ttftCpu.studio + cpuSeconds(studio.pid) - cpuBefore.studio, worker: ttftCpu.worker + cpuSeconds(real.pid) - cpuBefore.worker };
    ttftStudio.push(s.firstMs);
    if (i % 2 === 1) ttftDirect.push((await direct(port, chat(TTFT_TOKENS, prompt))).firstMs);
  }
  const d = summarize(ttftDirect);
  const s = summarize(ttftStudio);
  add("time to first token: llama-server direct (warm), median", d.p50, "ms", { note: `${runs} runs of ${TTFT_TOKENS} tokens each side` });
  add("time to first token: through the studio (POST to the first content chunk), median", s.p50, "ms");
  add("time to first token: through the studio, p90", s.p90, "ms");
  add("time to first token: overhead of studio + worker (median difference)", s.p50 - d.p50, "ms");
  add(`studio CPU per request of ${TTFT_TOKENS} tokens`, (ttftCpu.studio * 1000) / runs, "ms");
  add(`worker CPU per request of ${TTFT_TOKENS} tokens (without llama-server)`, (ttftCpu.worker * 1000) / runs, "ms");

  // Alternating sides again; each side's rate is the median of its runs.
  const longRates = { direct: [] as number[], studio: [] as number[] };
  const cpu = { studio: 0, worker: 0 };
  let relayedTokens = 0;
  for (let i = 0; i < longRuns; i++) {
    const prompt = `a long story, ${i}`;
    if (i % 2 === 0) longRates.direct.push(rate(await direct(longPort, chat(longTokens, prompt))));
    const before = { studio: cpuSeconds(studio.pid), worker: cpuSeconds(real.pid) };
    const longStudio = await viaStudio("tiny-llama-long", chat(longTokens, prompt));
    cpu.studio += cpuSeconds(studio.pid) - before.studio;
    cpu.worker += cpuSeconds(real.pid) - before.worker;
    relayedTokens += longStudio.tokens;
    longRates.studio.push(rate(longStudio));
    if (i % 2 === 1) longRates.direct.push(rate(await direct(longPort, chat(longTokens, prompt))));
  }
  const longDirect = summarize(longRates.direct).p50;
  const longStudio = summarize(longRates.studio).p50;
  add(`real llama-server, ${longTokens} tokens: tokens/s direct (POST to the last token), median`, longDirect, "tokens/s", { note: `${longRuns} runs each side` });
  add(`real llama-server, ${longTokens} tokens: tokens/s through the studio, median`, longStudio, "tokens/s");
  add(`real llama-server: through the studio / direct`, longStudio / longDirect, "x");
  add(`real llama-server: studio CPU per 1,000 tokens relayed`, (cpu.studio * 1e6) / relayedTokens, "ms");
  add(`real llama-server: worker CPU per 1,000 tokens relayed (without llama-server)`, (cpu.worker * 1e6) / relayedTokens, "ms");
  await real.stop();

  // The fake llama-server, as fast as it goes: the relay's own ceiling.
  const fake = await startWorker("bench-fake", join(ROOT, "test/fixtures/llama-server"), { FAKE_LLAMA_TOKENS: String(relayTokens), FAKE_LLAMA_TOKEN_MS: "0" });
  await viaStudio("tiny-llama", chat(4, "warm up"));
  const fakePort = fake.portFor(models[0]!)!;
  // Time to first token against the fixture, which answers at once: what the path through the
  // studio and the worker adds when no engine work competes with it for the two cores.
  await direct(fakePort, chat(4, "warm up"));
  const fixtureDirect: number[] = [];
  const fixtureStudio: number[] = [];
  for (let i = 0; i < runs; i++) {
    const prompt = `tell me a story, ${i}`;
    if (i % 2 === 0) fixtureDirect.push((await direct(fakePort, chat(TTFT_TOKENS, prompt))).firstMs);
    fixtureStudio.push((await viaStudio("tiny-llama", chat(TTFT_TOKENS, prompt))).firstMs);
    if (i % 2 === 1) fixtureDirect.push((await direct(fakePort, chat(TTFT_TOKENS, prompt))).firstMs);
  }
  const fd = summarize(fixtureDirect);
  const fs = summarize(fixtureStudio);
  add("time to first token: llama-server fixture direct, median", fd.p50, "ms", { note: `${runs} runs of ${TTFT_TOKENS} tokens each side` });
  add("time to first token: fixture through the studio, median", fs.p50, "ms");
  add("time to first token: fixture through the studio, p90", fs.p90, "ms");
  add("time to first token: overhead of studio + worker against the fixture (median difference)", fs.p50 - fd.p50, "ms", goal("<", 5, fs.p50 - fd.p50));
  const fastDirect = await direct(fakePort, chat(undefined, "as fast as you can"));
  const beforeFast = { studio: cpuSeconds(studio.pid), worker: cpuSeconds(fake.pid) };
  const fastStudio = await viaStudio("tiny-llama", chat(undefined, "as fast as you can"));
  const cpuFast = { studio: cpuSeconds(studio.pid) - beforeFast.studio, worker: cpuSeconds(fake.pid) - beforeFast.worker };
  if (fastStudio.text !== fastDirect.text) throw new Error("the relayed text differs from the fixture's");
  const relayed = rate(fastStudio);
  const seconds = fastStudio.lastMs / 1000;
  add(`relay ceiling (fake llama-server, ${relayTokens} tokens as fast as it sends): tokens/s direct`, rate(fastDirect), "tokens/s");
  add("relay ceiling: tokens/s through the studio", relayed, "tokens/s", goal(">=", 2000, relayed));
  add("relay ceiling: studio CPU while relaying", (cpuFast.studio / seconds) * 100, "% of a core");
  add("relay ceiling: worker CPU while relaying (without the engine)", (cpuFast.worker / seconds) * 100, "% of a core");
  add("relay ceiling: studio CPU per 1,000 tokens", (cpuFast.studio * 1e6) / fastStudio.tokens, "ms");
  await fake.stop();
  emitFigures("openai-stream", figures);
} finally {
  await studio.stop();
  files.stop();
  rmSync(scratch, { recursive: true, force: true });
}
