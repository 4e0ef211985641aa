import { afterEach, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { freshPgDatabase } from "../helpers/pg-storage.js";
import { readLines } from "../helpers/read-lines.js";

const ROOT = join(import.meta.dir, "..", "..");
const procs: Bun.Subprocess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function spawnServer(args: string[], env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "studio-pg-scratch-"));
  dirs.push(dataDir);
  const proc = Bun.spawn(["bun", "server/main.ts", "--port", "0", "--data-dir", dataDir, "--log-level", "info", ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, ...env },
  });
  procs.push(proc);
  return proc;
}

async function runToExit(args: string[], env: Record<string, string> = {}) {
  const proc = spawnServer(args, env);
  const [stdout, stderr, exit] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exit };
}

describe("--database-url", () => {
  test("a malformed URL or another scheme is refused in one line naming the flag and variable, the password never shown", async () => {
    const scheme = await runToExit(["--database-url", "mysql://root:hunter2@db/studio"]);
    expect(scheme.exit).toBe(2);
    expect(scheme.stderr.trim().split("\n")).toHaveLength(1);
    expect(scheme.stderr).toContain("--database-url (STUDIO_DATABASE_URL): must use postgres:// or postgresql://");
    expect(scheme.stderr).not.toContain("hunter2");
    const junk = await runToExit([], { STUDIO_DATABASE_URL: "not a url hunter2" });
    expect(junk.exit).toBe(2);
    expect(junk.stderr).toContain("--database-url (STUDIO_DATABASE_URL): must be a URL");
    expect(junk.stderr).not.toContain("hunter2");
  });

  test("an unreachable database stops start-up in one line, password redacted, and nothing is logged with it", async () => {
    const r = await runToExit([], { STUDIO_DATABASE_URL: "postgres://studio:hunter2@127.0.0.1:1/studio" });
    expect(r.exit).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("cannot reach the database at postgres://studio:***@127.0.0.1:1/studio (--database-url (STUDIO_DATABASE_URL))");
    expect(`${r.stdout}${r.stderr}`).not.toContain("hunter2");
  });

  test("a database migrated by a newer studio is refused before anything is applied", async () => {
    const url = await freshPgDatabase();
    const db = new SQL({ url, max: 1 });
    await db.unsafe(`INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('from-the-future', 4102444800000)`);
    await db.close();
    const r = await runToExit(["--database-url", url]);
    expect(r.exit).toBe(1);
    expect(r.stderr).toContain("the database schema is newer than this studio");
    expect(r.stderr).toContain("2100-01-01");
  });

  test("the server process runs on PostgreSQL: seeded registry, password-free logs", async () => {
    const url = await freshPgDatabase();
    const withPassword = url.replace("postgres@", "postgres:unused-secret@");
    const proc = spawnServer([], { STUDIO_DATABASE_URL: withPassword });
    const lines = readLines(proc.stdout as ReadableStream<Uint8Array>);
    const logged: string[] = [];
    let base = "";
    for await (const line of lines) {
      logged.push(line);
      const entry = line.startsWith("{") ? (JSON.parse(line) as { msg?: string; url?: string; database?: string }) : {};
      if (entry.msg === "studio listening") {
        base = entry.url!;
        expect(entry.database).toContain("postgres:***@");
        break;
      }
    }
    const registry = createClient(RegistryService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    expect((await registry.listModels({})).models.map((m) => m.name)).toEqual(["qwen3-0.6b", "synthetic", "z-image-turbo"]);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(logged.join("\n")).not.toContain("unused-secret");
  });
});
