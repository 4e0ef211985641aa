import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { readLines } from "../helpers/read-lines.js";

const ROOT = join(import.meta.dir, "..", "..");
const dirs: string[] = [];
const procs: Bun.Subprocess[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Starts `bun server/main.ts` on port 0 and resolves with its URL, read from the "studio listening" log line. */
async function startServer(dataDir: string, env: Record<string, string> = {}) {
  const proc = Bun.spawn(["bun", "server/main.ts", "--port", "0", "--data-dir", dataDir, "--log-level", "info"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  procs.push(proc);
  const lines = readLines(proc.stdout as ReadableStream<Uint8Array>);
  for (;;) {
    const { value: line, done } = await lines.next();
    if (done) throw new Error(`server exited before listening: ${await new Response(proc.stderr).text()}`);
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    if (entry.msg === "studio listening" && entry.url) {
      // Keep draining stdout so that the child never blocks on a full pipe.
      void (async () => {
        for await (const _ of lines);
      })();
      return { proc, url: entry.url };
    }
  }
}


describe("bun run server", () => {
  test("starts seeded, shuts down cleanly on SIGTERM, and keeps its jobs across a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "studio-proc-"));
    dirs.push(dataDir);
    const first = await startServer(dataDir);
    const transport = createConnectTransport({ baseUrl: first.url, httpVersion: "1.1" });
    const models = await createClient(RegistryService, transport).listModels({});
    expect(models.models.map((m) => m.name)).toEqual(["qwen3-0.6b", "synthetic", "z-image-turbo"]);
    const { job } = await createClient(JobService, transport).createJob({
      model: "synthetic",
      task: { kind: { case: "text", value: { prompt: "hello" } } },
    });
    first.proc.kill("SIGTERM");
    expect(await first.proc.exited).toBe(0);

    const second = await startServer(dataDir);
    const again = createClient(JobService, createConnectTransport({ baseUrl: second.url, httpVersion: "1.1" }));
    expect((await again.getJob({ jobId: job!.id })).job).toEqual(job!);
    second.proc.kill("SIGINT");
    expect(await second.proc.exited).toBe(0);
  }, 20_000);

  test("a variable set to the empty string is unset, as for the worker: the default applies", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "studio-proc-"));
    dirs.push(dataDir);
    // Commander's .env() took "" as a value: an empty host or admin token stopped start-up.
    const { proc, url } = await startServer(dataDir, { STUDIO_HOST: "", STUDIO_ADMIN_TOKEN: "", STUDIO_LEASE_TTL_MS: "" });
    expect(new URL(url).hostname).toBe("127.0.0.1");
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 20_000);

  test("a bad flag stops start-up with a message naming it", async () => {
    const proc = Bun.spawn(["bun", "server/main.ts", "--port", "not-a-port", "--data-dir", "/nonexistent-unused"], {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
    });
    procs.push(proc);
    expect(await proc.exited).toBe(2);
    const stderr = await new Response(proc.stderr).text();
    expect(stderr).toContain('--port (STUDIO_PORT): must be a number (got "not-a-port")');
    expect(stderr).not.toContain("NaN");
  });

  /** Runs `bun server/main.ts args` to its exit (it must not start listening) and returns exit code and output. */
  async function runToExit(args: string[]) {
    const proc = Bun.spawn(["bun", "server/main.ts", ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    procs.push(proc);
    const [stdout, stderr, exit] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { stdout, stderr, exit };
  }

  test("bad values are quoted as given, a too-short --admin-token is never echoed, heartbeat vs TTL names both flags", async () => {
    const ttl = await runToExit(["--lease-ttl-ms", "12.5s", "--data-dir", "/nonexistent-unused"]);
    expect(ttl.exit).toBe(2);
    expect(ttl.stderr).toContain('--lease-ttl-ms (STUDIO_LEASE_TTL_MS): must be a number (got "12.5s")');
    const token = await runToExit(["--admin-token", "short-secret-value", "--data-dir", "/nonexistent-unused"]);
    expect(token.exit).toBe(2);
    expect(token.stderr).toContain("--admin-token");
    expect(token.stderr).not.toContain("short-secret-value");
    const hb = await runToExit(["--lease-ttl-ms", "1000", "--heartbeat-interval-ms", "600", "--data-dir", "/nonexistent-unused"]);
    expect(hb.exit).toBe(2);
    expect(hb.stderr).toContain("--heartbeat-interval-ms (600) must be at most half of --lease-ttl-ms (1000)");
  });

  test("a busy port is one line naming the port and --port, before the data dir is touched", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as AddressInfo).port;
    const parent = mkdtempSync(join(tmpdir(), "studio-busy-"));
    dirs.push(parent);
    const dataDir = join(parent, "data");
    try {
      const { exit, stdout, stderr } = await runToExit(["--port", String(port), "--data-dir", dataDir]);
      expect(exit).toBe(1);
      expect(stdout).toBe("");
      expect(stderr.trimEnd().split("\n")).toEqual([
        `studio-server: port ${port} on 127.0.0.1 is already in use; stop what holds it or choose another port with --port (or STUDIO_PORT)`,
      ]);
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  test("--help shows every default", async () => {
    const { stdout, exit } = await runToExit(["--help"]);
    expect(exit).toBe(0);
    const flat = stdout.replace(/\s+/g, " ");
    for (const shown of [
      "(default: 127.0.0.1)",
      "(default: 8080)",
      "(default: ./data)",
      "(default: info)",
      "(default: 30000 ms)",
      "(default: 10000 ms)",
      "(default: 536870912 = 512 MiB)",
      "(default: 3)",
      "(default: 16)",
    ])
      expect(flat).toContain(shown);
    expect(flat).toContain("prefer STUDIO_ADMIN_TOKEN");
  });
});
