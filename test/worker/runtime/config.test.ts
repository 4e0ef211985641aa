import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../../contract/settings.js";
import { resolveEngines } from "../../../worker/config.js";
import { parseWorkerArgs } from "../../../worker/ui/cli-options.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;

const argv = (...args: string[]) => ["bun", "studio-worker", ...args];
const parse = (args: string[], env: Record<string, string> = {}) => parseWorkerArgs(argv(...args), { env });

describe("worker configuration", () => {
  test("defaults, with only --server given", () => {
    const c = parse(["--server", "http://studio.local:8080"], { XDG_CACHE_HOME: "/var/cache" });
    expect(c).toMatchObject({
      server: ["http://studio.local:8080"],
      gpus: { kind: "all" },
      gpuPollSeconds: 10,
      cacheDir: "/var/cache/studio-worker",
      cacheMaxBytes: 100 * 1024 ** 3,
      llamaIdleSeconds: 300,
      jobTimeout: 3600,
      logLevel: "info",
      labels: {},
    });
    expect(c.engines).toBeUndefined();
    expect(c.slots).toBeUndefined();
    expect(c.slotGpus).toBeUndefined();
    expect(c.name.length).toBeGreaterThan(0);
  }, TEST_TIMEOUT_MS);

  test("environment variables fill what flags leave out; flags win", () => {
    const c = parse(["--slots", "3"], {
      STUDIO_SERVER: "https://studio.example",
      STUDIO_TOKEN: "t0k3n",
      STUDIO_SLOTS: "8",
      STUDIO_ENGINES: "sd-cpp, synthetic",
      STUDIO_CACHE_MAX_BYTES: "20G",
      HF_TOKEN: "hf_abc",
      STUDIO_LABELS: "gpu=4090,zone=eu",
    });
    expect(c).toMatchObject({
      server: ["https://studio.example"],
      token: "t0k3n",
      slots: 3,
      engines: ["sd-cpp", "synthetic"],
      cacheMaxBytes: 20 * 1024 ** 3,
      hfToken: "hf_abc",
      labels: { gpu: "4090", zone: "eu" },
    });
  }, TEST_TIMEOUT_MS);

  test("--server repeated or as a comma list names replicas to rotate through, in order, once each", () => {
    expect(parse(["--server", "http://a:8080", "--server", "http://b:8080,http://a:8080"]).server).toEqual(["http://a:8080", "http://b:8080"]);
    expect(parse([], { STUDIO_SERVER: "https://a.example, https://b.example" }).server).toEqual(["https://a.example", "https://b.example"]);
    expect(() => parse(["--server", "http://a,ftp://b"])).toThrow("--server (STUDIO_SERVER): must use http: or https:, not ftp:");
  }, TEST_TIMEOUT_MS);

  test("a missing --server is named", () => {
    expect(() => parse([])).toThrow(/--server is required \(or set STUDIO_SERVER\)/);
  }, TEST_TIMEOUT_MS);

  test("each bad value stops start-up naming its flag and the value", () => {
    const err = (args: string[]) => {
      try {
        parse(args);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(err(["--server", "ftp://x"])).toContain("--server (STUDIO_SERVER): must use http: or https:, not ftp:");
    expect(err(["--server", "not a url"])).toContain('--server (STUDIO_SERVER): must be an absolute http: or https: URL (got "not a url")');
    expect(err(["--server", "http://u:p@h"])).toContain("must not carry credentials");
    expect(err(["--server", "http://h", "--slots", "0"])).toContain("--slots (STUDIO_SLOTS)");
    expect(err(["--server", "http://h", "--slots", "two"])).toContain("--slots (STUDIO_SLOTS)");
    expect(err(["--server", "http://h", "--engines", "sd-cpp,comfy"])).toContain('--engines (STUDIO_ENGINES): unknown engine "comfy"');
    expect(err(["--server", "http://h", "--cache-max-bytes", "lots"])).toContain('--cache-max-bytes (STUDIO_CACHE_MAX_BYTES): must be a byte size like 500M or 50G (got "lots")');
    expect(err(["--server", "http://h", "--log-level", "loud"])).toContain("--log-level (STUDIO_LOG_LEVEL)");
    expect(err(["--server", "http://h", "--labels", "=x"])).toContain("--labels (STUDIO_LABELS)");
    expect(err(["--server", "http://h", "--job-timeout", "0"])).toContain("--job-timeout (STUDIO_JOB_TIMEOUT)");
  }, TEST_TIMEOUT_MS);

  test("download tuning: --stall-timeout, --download-parts, --download-part-threshold, with env and bounds", () => {
    const d = parse(["--server", "http://h"]);
    expect(d).toMatchObject({ stallTimeout: 60, downloadParts: 4, downloadPartThreshold: 64 * 1024 ** 2 });
    const flags = parse(["--server", "http://h", "--stall-timeout", "5", "--download-parts", "8", "--download-part-threshold", "16M"]);
    expect(flags).toMatchObject({ stallTimeout: 5, downloadParts: 8, downloadPartThreshold: 16 * 1024 ** 2 });
    const env = parse(["--server", "http://h", "--stall-timeout", "7"], {
      STUDIO_STALL_TIMEOUT: "90",
      STUDIO_DOWNLOAD_PARTS: "2",
      STUDIO_DOWNLOAD_PART_THRESHOLD: "1G",
    });
    expect(env).toMatchObject({ stallTimeout: 7, downloadParts: 2, downloadPartThreshold: 1024 ** 3 });
    const err = (args: string[]) => {
      try {
        parse(["--server", "http://h", ...args]);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(err(["--stall-timeout", "0"])).toContain("--stall-timeout (STUDIO_STALL_TIMEOUT)");
    expect(err(["--stall-timeout", "3601"])).toContain("--stall-timeout (STUDIO_STALL_TIMEOUT)");
    expect(err(["--stall-timeout", "1.5"])).toContain("--stall-timeout (STUDIO_STALL_TIMEOUT)");
    expect(err(["--download-parts", "0"])).toContain("--download-parts (STUDIO_DOWNLOAD_PARTS)");
    expect(err(["--download-parts", "17"])).toContain("--download-parts (STUDIO_DOWNLOAD_PARTS)");
    expect(err(["--download-part-threshold", "512K"])).toContain("--download-part-threshold (STUDIO_DOWNLOAD_PART_THRESHOLD): must be at least 1M");
    expect(err(["--download-part-threshold", "big"])).toContain("--download-part-threshold (STUDIO_DOWNLOAD_PART_THRESHOLD)");
  }, TEST_TIMEOUT_MS);
});

describe("resolveEngines", () => {
  const dir = mkdtempSync(join(tmpdir(), "worker-config-"));
  const exe = join(dir, "sd-cli");
  writeFileSync(exe, "#!/bin/sh\n");
  chmodSync(exe, 0o755);
  const plain = join(dir, "not-executable");
  writeFileSync(plain, "");
  const isExecutable = (p: string) => p === exe;
  const nothingOnPath = { onPath: () => undefined, isExecutable };
  const llamaOnPath = { onPath: (n: string) => (n === "llama-server" ? "/usr/bin/llama-server" : undefined), isExecutable };

  test("default: each engine whose program is found, never synthetic", () => {
    expect(resolveEngines({ sdCli: exe }, llamaOnPath)).toEqual({ sdCli: exe, llamaServer: "/usr/bin/llama-server", synthetic: false });
    expect(resolveEngines({}, nothingOnPath)).toEqual({ sdCli: undefined, llamaServer: undefined, synthetic: false });
  }, TEST_TIMEOUT_MS);

  test("--engines picks engines; synthetic only when named", () => {
    expect(resolveEngines({ engines: ["synthetic"] }, llamaOnPath)).toEqual({ sdCli: undefined, llamaServer: undefined, synthetic: true });
    expect(resolveEngines({ engines: ["llama-cpp"], sdCli: exe }, llamaOnPath)).toEqual({
      sdCli: undefined,
      llamaServer: "/usr/bin/llama-server",
      synthetic: false,
    });
  }, TEST_TIMEOUT_MS);

  test("an engine asked for without its program is a clear error", () => {
    expect(() => resolveEngines({ engines: ["sd-cpp"] }, nothingOnPath)).toThrow(
      "--engines names sd-cpp but sd-cli was not found on PATH; pass --sd-cli PATH",
    );
    expect(() => resolveEngines({ engines: ["llama-cpp"] }, nothingOnPath)).toThrow(/llama-server was not found on PATH/);
    expect(() => resolveEngines({ sdCli: plain }, nothingOnPath)).toThrow(`--sd-cli: ${plain} is not an executable file`);
    rmSync(dir, { recursive: true, force: true });
  }, TEST_TIMEOUT_MS);
});

describe("the program", () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    Bun.spawnSync([process.execPath, join(import.meta.dir, "../../../worker/main.ts"), ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), ...env },
    });

  test("--help lists every flag with its environment variable", () => {
    const r = run(["--help"]);
    expect(r.exitCode).toBe(0);
    const help = r.stdout.toString();
    for (const flag of ["--server", "--token", "--cache-max-bytes", "--engines", "--llama-idle-seconds", "--job-timeout", "--ca-file", "--hf-token", "--stall-timeout", "--download-parts", "--download-part-threshold"])
      expect(help).toContain(flag);
    expect(help).toContain("[env STUDIO_SERVER]");
    expect(help).toContain("[env HF_TOKEN]");
    expect(help).toContain("[env STUDIO_STALL_TIMEOUT]");
  }, TEST_TIMEOUT_MS);

  test("--help shows the cache and work dirs this environment gives", () => {
    const flat = (r: ReturnType<typeof run>) => r.stdout.toString().replace(/\s+/g, " ");
    const plain = flat(run(["--help"]));
    expect(plain).toContain(`default: ${join(tmpdir(), ".cache", "studio-worker")}) [env STUDIO_CACHE_DIR]`);
    // Private to the user, under the cache dir; never the shared temp dir (issue 16, item 5).
    expect(plain).toContain(`default: ${join(tmpdir(), ".cache", "studio-worker", "work")}, under --cache-dir) [env STUDIO_WORK_DIR]`);
    expect(plain).toContain("default 100G) [env STUDIO_CACHE_MAX_BYTES]");
    const xdg = flat(run(["--help"], { XDG_CACHE_HOME: "/srv/cache" }));
    expect(xdg).toContain("default: /srv/cache/studio-worker) [env STUDIO_CACHE_DIR]");
  }, TEST_TIMEOUT_MS);

  test("a bad value exits 2 naming it; an unknown flag is refused", () => {
    const bad = run(["--server", "http://127.0.0.1:1", "--slots", "-4"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("studio-worker: bad configuration: --slots (STUDIO_SLOTS)");
    const unknown = run(["--server", "http://127.0.0.1:1", "--gpu-count", "2"]);
    expect(unknown.exitCode).not.toBe(0);
    expect(unknown.stderr.toString()).toContain("unknown option '--gpu-count'");
  }, TEST_TIMEOUT_MS);

  test("no engine program at all, or an engine named without its program, stops start-up", () => {
    const none = run(["--server", "http://127.0.0.1:1"], { PATH: "/nonexistent" });
    expect(none.exitCode).toBe(2);
    expect(none.stderr.toString()).toContain("no engine to run");
    const missing = run(["--server", "http://127.0.0.1:1", "--engines", "llama-cpp"], { PATH: "/nonexistent" });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr.toString()).toContain("--engines names llama-cpp but llama-server was not found on PATH");
  }, TEST_TIMEOUT_MS);
});
