import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { SimWorker } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { runCli } from "./run-cli.js";

const ADMIN = `cli-admin-${"c".repeat(32)}`;
let t: TestStudio;
let dir: string;
let admin: Record<string, string>;
let client: Record<string, string>;
let workerSecret: string;
let files: ReturnType<typeof Bun.serve>;

const synthSource = { engine: "synthetic", files: [], cliDefaults: { steps: 2, width: 64, height: 64 } };

beforeAll(async () => {
  t = await startTestStudio({ adminToken: ADMIN });
  dir = mkdtempSync(join(tmpdir(), "studio-cli-"));
  admin = { STUDIO_SERVER: t.url, STUDIO_TOKEN: ADMIN };
  const made = await runCli(["--json", "tokens", "create", "cli client", "--role", "client"], admin);
  expect(made.exit).toBe(0);
  client = { STUDIO_SERVER: t.url, STUDIO_TOKEN: JSON.parse(made.stdout).secret };
  workerSecret = JSON.parse((await runCli(["--json", "tokens", "create", "cli worker", "--role", "worker"], admin)).stdout).secret;
  files = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => (new URL(req.url).pathname === "/missing.gguf" ? new Response("gone", { status: 404 }) : new Response("x".repeat(1234))),
  });
});
afterAll(async () => {
  await files.stop(true);
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("studio tokens", () => {
  test("create prints the secret once on stdout (plain) and list never shows secrets; revoke works", async () => {
    const made = await runCli(["tokens", "create", "plain one", "--role", "worker"], admin);
    expect(made.exit).toBe(0);
    const secret = made.stdout.trim();
    expect(secret).toMatch(/^stu_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toContain("shown only this once");
    const list = await runCli(["--json", "tokens", "list"], admin);
    expect(list.exit).toBe(0);
    expect(list.stdout).not.toContain(secret);
    const tokens = JSON.parse(list.stdout).tokens as Array<{ id: string; name: string; role: string }>;
    const mine = tokens.find((x) => x.name === "plain one")!;
    expect(mine.role).toBe("TOKEN_ROLE_WORKER");
    const table = await runCli(["tokens", "list"], admin);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+ROLE/);
    expect(table.stdout).toContain("plain one");
    expect((await runCli(["tokens", "revoke", mine.id], admin)).exit).toBe(0);
    const again = await runCli(["tokens", "revoke", mine.id], admin);
    expect(again.exit).toBe(1);
    expect(again.stderr).toContain("failed_precondition");
  }, 15_000);
});

describe("studio models", () => {
  test("add, get, edit, disable/enable, export, delete, import round trip", async () => {
    const src = join(dir, "source.json");
    writeFileSync(src, JSON.stringify(synthSource));
    expect((await runCli(["models", "add", "cli-synth", "--source", src, "--description", "from the CLI"], admin)).exit).toBe(0);
    const got = await runCli(["--json", "models", "get", "cli-synth"], admin);
    expect(got.exit).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ name: "cli-synth", enabled: true, description: "from the CLI" });
    expect((await runCli(["models", "edit", "cli-synth", "--description", "edited"], admin)).exit).toBe(0);
    expect((await runCli(["models", "disable", "cli-synth"], admin)).exit).toBe(0);
    const exported = join(dir, "export.json");
    const [list, table, exporting] = await Promise.all([
      runCli(["--json", "models", "list"], admin),
      runCli(["models", "list"], client),
      runCli(["models", "export", "cli-synth", "-o", exported], admin),
    ]);
    const row = JSON.parse(list.stdout).models.find((m: { name: string }) => m.name === "cli-synth");
    expect(row.enabled ?? false).toBe(false);
    expect(row.description).toBe("edited");
    expect(table.exit).toBe(0);
    expect(table.stdout).toMatch(/cli-synth\s+no\s+synthetic/);
    expect(exporting.exit).toBe(0);
    const entries = JSON.parse(readFileSync(exported, "utf8"));
    expect(entries).toEqual([{ name: "cli-synth", description: "edited", enabled: false, source: synthSource }]);

    expect((await runCli(["models", "delete", "cli-synth"], admin)).exit).toBe(0);
    const imported = await runCli(["--json", "models", "import", exported], admin);
    expect(imported.exit).toBe(0);
    expect(JSON.parse(imported.stdout)).toEqual([{ name: "cli-synth", action: "created" }]);
    const clash = await runCli(["models", "import", exported], admin);
    expect(clash.exit).toBe(1);
    expect(clash.stderr).toContain("--replace");
    expect((await runCli(["models", "import", "--replace", exported], admin)).exit).toBe(0);
    const back = JSON.parse((await runCli(["--json", "models", "get", "cli-synth"], admin)).stdout);
    expect(back.enabled ?? false).toBe(false);
  }, 30_000);

  test("an invalid import file is a usage error naming the entry and field; nothing is written", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify([{ name: "bad-one", source: { engine: "warp-drive", files: [] } }]));
    const notJson = join(dir, "not.json");
    writeFileSync(notJson, "{");
    const [run, notWritten, notParsed] = await Promise.all([
      runCli(["models", "import", bad], admin),
      runCli(["models", "get", "bad-one"], admin),
      runCli(["models", "import", notJson], admin),
    ]);
    expect(run.exit).toBe(2);
    expect(run.stderr).toContain("[0].source.engine");
    expect(notWritten.exit).toBe(3);
    expect(notParsed.exit).toBe(2);
  }, 15_000);

  test("verify reports reachability from a local file server; a missing file makes exit 1", async () => {
    const src = join(dir, "remote.json");
    const source = (path: string) => ({
      engine: "llama-cpp",
      files: [{ role: "model", url: `http://127.0.0.1:${files.port}/${path}`, filename: "m.gguf", approxBytes: 1234 }],
      cliDefaults: {},
    });
    writeFileSync(src, JSON.stringify(source("m.gguf")));
    const missing = join(dir, "missing.json");
    writeFileSync(missing, JSON.stringify(source("missing.gguf")));
    const [ok, broken, verifyUsage] = await Promise.all([
      runCli(["--json", "models", "verify", "--source", src], admin),
      runCli(["models", "verify", "--source", missing], admin),
      runCli(["models", "verify"], admin),
    ]);
    expect(broken.exit).toBe(1);
    expect(broken.stdout).toContain("UNREACHABLE");
    expect(ok.exit).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, files: [{ filename: "m.gguf", reachable: true, sizeMatches: true }] });
    expect(verifyUsage.exit).toBe(2);
  }, 15_000);
});

describe("studio jobs and workers", () => {
  test("create, list, get, watch to the end, output to a file, retry, cancel, promote; workers list", async () => {
    const created = await runCli(["--json", "jobs", "create", "synthetic", "a blue door", "--steps", "3"], client);
    expect(created.exit).toBe(0);
    const job = JSON.parse(created.stdout);
    expect(job).toMatchObject({ model: "synthetic", status: "JOB_STATUS_QUEUED" });
    const list = await runCli(["--json", "jobs", "list", "--status", "queued"], client);
    expect(JSON.parse(list.stdout).jobs.map((j: { id: string }) => j.id)).toContain(job.id);

    // A worker (with a worker token) runs it while `jobs watch` follows it.
    const auth: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${workerSecret}`);
      return next(req);
    };
    const w = await SimWorker.connect(createConnectTransport({ baseUrl: t.url, httpVersion: "2", interceptors: [auth] }), {
      name: "cli-sim",
      engines: [ModelEngine.SYNTHETIC],
    });
    const workers = await runCli(["--json", "workers", "list"], client);
    expect(JSON.parse(workers.stdout).workers.map((x: { name: string }) => x.name)).toContain("cli-sim");

    const watching = runCli(["jobs", "watch", job.id], client);
    const offer = await w.nextOffer();
    expect(offer.jobId).toBe(job.id);
    const lease = { jobId: offer.jobId, leaseId: offer.leaseId };
    w.send({ case: "accept", value: lease });
    await w.receipt(lease.jobId, lease.leaseId);
    const bytes = new TextEncoder().encode("pixels!");
    w.upload(lease, 0, bytes, { mimeType: "image/png" });
    expect(await w.complete(lease)).toMatchObject({ ok: true });
    const watched = await watching;
    expect(watched.exit).toBe(0);
    const lines = watched.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ id: job.id, status: "JOB_STATUS_SUCCEEDED" });

    const out = join(dir, "out.png");
    const dl = await runCli(["jobs", "output", job.id, "-o", out], client);
    expect(dl.exit).toBe(0);
    expect(readFileSync(out, "utf8")).toBe("pixels!");
    expect((await runCli(["jobs", "output", job.id, "--index", "5", "-o", join(dir, "none")], client)).exit).toBe(3);

    const got = await runCli(["jobs", "get", job.id], client);
    expect(got.stdout).toContain("succeeded");

    const promoted = await runCli(["--json", "jobs", "promote", job.id, "synthetic"], client);
    expect(promoted.exit).toBe(0);
    const pid = JSON.parse(promoted.stdout).id;
    expect(JSON.parse(promoted.stdout).promotedFrom).toBe(job.id);
    const cancelled = await runCli(["--json", "jobs", "cancel", pid], client);
    expect(JSON.parse(cancelled.stdout).status).toBe("JOB_STATUS_CANCELLED");
    const retried = await runCli(["--json", "jobs", "retry", pid], client);
    expect(JSON.parse(retried.stdout).status).toBe("JOB_STATUS_QUEUED");
    await w.close();
  }, 30_000);

  test("a bad task is caught before it is sent: exit 2 naming the field", async () => {
    const run = await runCli(["jobs", "create", "synthetic", "x", "--batch-count", "99"], client);
    expect(run.exit).toBe(2);
    expect(run.stderr).toContain("batch_count");
  });
});

describe("what a new operator needs from the CLI", () => {
  const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);

  /** A worker that declines every offer but the one whose prompt is `prompt`, and hands that one to `run`. */
  async function serve(w: SimWorker, prompt: string, run: (lease: { jobId: string; leaseId: string }) => Promise<unknown>) {
    for (;;) {
      const offer = await w.nextOffer();
      const lease = { jobId: offer.jobId, leaseId: offer.leaseId };
      if (offer.task?.kind.case === "image" && offer.task.kind.value.prompt === prompt) return run(lease);
      w.send({ case: "decline", value: { ...lease, reason: "not this test's job" } });
    }
  }

  test("a queued job says why it waits: jobs get gives the sentence, jobs list a tag", async () => {
    const made = await runCli(["jobs", "create", "z-image-turbo", "a fox nobody can draw"], client);
    expect(made.exit).toBe(0);
    const id = made.stdout.trim().replace(/^queued /, "");
    try {
      const got = await runCli(["jobs", "get", id], client);
      expect(got.stdout).toMatch(/^waiting: {3}no connected worker runs sd-cpp \((no worker is connected|\d+ workers? connected, running [a-z, -]+)\)$/m);
      const listed = await runCli(["jobs", "list", "--status", "queued", "--model", "z-image-turbo"], client);
      expect(listed.stdout).toContain("queued (no sd-cpp worker)");
      const json = JSON.parse((await runCli(["--json", "jobs", "get", id], client)).stdout);
      expect(json.waiting).toMatchObject({ reason: "WAIT_REASON_NO_CAPABLE_WORKER", engine: "sd-cpp" });
    } finally {
      await runCli(["jobs", "cancel", id], client);
    }
  });

  test("--version prints the CLI's version", async () => {
    const run = await runCli(["--version"], {});
    expect(run.exit).toBe(0);
    expect(run.stdout.trim()).toBe((await import("../../package.json")).version);
  });

  test("--output DIR saves the outputs; --watch alone ends with the commands that save them; list shows prompt and error", async () => {
    const auth: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${workerSecret}`);
      return next(req);
    };
    const w = await SimWorker.connect(createConnectTransport({ baseUrl: t.url, httpVersion: "2", interceptors: [auth] }), {
      name: "cli-output-sim",
      engines: [ModelEngine.SYNTHETIC],
    });
    const finish = async (lease: { jobId: string; leaseId: string }) => {
      w.send({ case: "accept", value: lease });
      w.upload(lease, 0, PNG, { mimeType: "image/png" });
      expect(await w.complete(lease)).toMatchObject({ ok: true });
    };
    try {
      const outDir = join(dir, "saved", "here");
      const saving = runCli(["jobs", "create", "synthetic", "a kite to save", "--output", outDir], client);
      await serve(w, "a kite to save", finish);
      const saved = await saving;
      expect(saved.exit).toBe(0);
      const id = JSON.parse(saved.stdout.trim().split("\n")[0]!).id as string;
      const file = join(outDir, `${id}-0.png`);
      expect(saved.stderr).toContain(`saved ${file} (11 bytes, image/png)`);
      expect(new Uint8Array(readFileSync(file))).toEqual(PNG);

      const watching = runCli(["jobs", "create", "synthetic", "a kite to watch", "--watch"], client);
      await serve(w, "a kite to watch", finish);
      const watched = await watching;
      expect(watched.exit).toBe(0);
      const watchedId = JSON.parse(watched.stdout.trim().split("\n")[0]!).id as string;
      expect(watched.stderr).toBe(`save the outputs with:\n  studio jobs output ${watchedId} --index 0 -o ${watchedId}-0.png\n`);

      const longPrompt = `a kite that fails ${"and fails again ".repeat(10)}`;
      const failing = runCli(["jobs", "create", "synthetic", longPrompt, "--watch"], client);
      await serve(w, longPrompt, async (lease) => {
        w.send({ case: "accept", value: lease });
        await w.fail(lease, "engine crashed: out of memory\n  at layer 7", false);
      });
      expect((await failing).exit).toBe(1);

      const list = await runCli(["jobs", "list", "--limit", "3"], client);
      expect(list.exit).toBe(0);
      const [head, ...rows] = list.stdout.trimEnd().split("\n");
      expect(head).toMatch(/^ID\s+MODEL\s+STATUS\s+ATTEMPTS\s+WORKER\s+CREATED\s+PROMPT\s+ERROR$/);
      expect(rows[0]).toContain("a kite that fails and fails again and f…");
      expect(rows[0]).toContain("engine crashed: out of memory at layer 7");
      expect(rows[1]).toMatch(/a kite to watch\s+-$/);
    } finally {
      await w.close();
    }
  }, 30_000);
});

describe("exit codes and errors that say what to do", () => {
  test("not found 3, no token 4, wrong role 4, unreachable 5, usage 2, help 0", async () => {
    const [notFound, noToken, wrongRole, unreachable, usage, help, badUrl, noVerb] = await Promise.all([
      runCli(["jobs", "get", "no-such-job"], client),
      runCli(["jobs", "list"], { STUDIO_SERVER: t.url }),
      runCli(["tokens", "list"], client),
      runCli(["--server", "http://127.0.0.1:9", "models", "list"], {}),
      runCli(["jobs", "frobnicate"], client),
      runCli(["--help"], {}),
      runCli(["--server", "ftp://x", "models", "list"], {}),
      runCli(["jobs"], {}),
    ]);
    expect([notFound.exit, noToken.exit, wrongRole.exit, unreachable.exit, usage.exit, help.exit, badUrl.exit, noVerb.exit]).toEqual([
      3, 4, 4, 5, 2, 0, 2, 2,
    ]);
    expect(notFound.stderr).toContain("not_found");
    expect(noToken.stderr).toContain("STUDIO_TOKEN");
    expect(wrongRole.stderr).toContain("permission_denied");
    expect(unreachable.stderr).toContain("cannot reach the studio");
    expect(help.stdout).toContain("Exit codes:");
  }, 15_000);
});
