import { sqliteOf } from "../helpers/test-studio.js";
import { afterEach, describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { isLoopbackHost } from "../../contract/http-url.js";
import { clientFor, startAuthStudio } from "./support.js";

const SERVER = join(import.meta.dir, "../../server/main.ts");
const dirs: string[] = [];
const children: Bun.Subprocess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill("SIGKILL");
    await c.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The test's environment without STUDIO_* settings, so that the child sees only what the test passes. */
function withoutStudioEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith("STUDIO_") && v !== undefined)) as Record<
    string,
    string
  >;
}

function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "studio-boot-"));
  dirs.push(d);
  return d;
}

/** Starts `bun server/main.ts` and reads its JSON log until the "studio listening" line; returns its url and stderr so far. */
async function spawnServer(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn(["bun", SERVER, "--port", "0", "--log-level", "info", ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...withoutStudioEnv(), ...env },
  });
  children.push(child);
  const lines: unknown[] = [];
  const decoder = new TextDecoder();
  let buffered = "";
  const reader = child.stdout.getReader();
  let port: number | undefined;
  while (port === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited: ${await new Response(child.stderr).text()}`);
    buffered += decoder.decode(value);
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      if (line.msg === "studio listening") port = Number(new URL(line.url).port);
    }
  }
  child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value);
  }
  await child.exited;
  const stderr = await new Response(child.stderr).text();
  return { port, lines, log: JSON.stringify(lines) + buffered, stderr, child };
}

describe("bootstrap", () => {
  test("loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) expect(isLoopbackHost(h)).toBe(true);
    // One rule with the Host check of an open studio: a name under localhost is a DNS name like any other.
    for (const h of ["0.0.0.0", "::", "192.168.1.2", "10.0.0.1", "example.com", "128.0.0.1", "127.0.0.256", "a.localhost", "::ffff:localhost"])
      expect(isLoopbackHost(h)).toBe(false);
  });

  test("loopback with no tokens runs open (and says so); the first token turns auth on for good", async () => {
    const studio = await startAuthStudio();
    try {
      const anon = clientFor(TokenService, studio.url);
      expect((await clientFor(JobService, studio.url).listJobs({})).jobs).toEqual([]);
      const { secret } = await anon.createToken({ name: "first admin", role: TokenRole.ADMIN });
      const refused = await clientFor(JobService, studio.url).listJobs({}).catch((e) => ConnectError.from(e).code);
      expect(refused).toBe(Code.Unauthenticated);
      expect((await clientFor(TokenService, studio.url, secret).listTokens({})).tokens.length).toBe(1);
    } finally {
      await studio.stop();
    }
  });

  test("while open, a first client or worker token is refused (it would lock the admin out); an admin token first works", async () => {
    const studio = await startAuthStudio();
    try {
      const anon = clientFor(TokenService, studio.url);
      for (const role of [TokenRole.CLIENT, TokenRole.WORKER]) {
        const err = await anon.createToken({ name: "laptop", role }).catch((e) => ConnectError.from(e));
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
        expect((err as ConnectError).message).toContain("must be an admin token");
        expect((err as ConnectError).message).toContain("tokens create <name> --role admin");
      }
      // Nothing was written and the studio is still open.
      expect(sqliteOf(studio).query("SELECT count(*) AS n FROM apiTokens").get()).toEqual({ n: 0 });
      expect((await clientFor(JobService, studio.url).listJobs({})).jobs).toEqual([]);
      // A bad name is still INVALID_ARGUMENT, whatever the role.
      const badName = await anon.createToken({ name: " ", role: TokenRole.CLIENT }).catch((e) => ConnectError.from(e).code);
      expect(badName).toBe(Code.InvalidArgument);

      const { secret } = await anon.createToken({ name: "operator", role: TokenRole.ADMIN });
      const admin = clientFor(TokenService, studio.url, secret);
      const laptop = await admin.createToken({ name: "laptop", role: TokenRole.CLIENT });
      expect((await clientFor(JobService, studio.url, laptop.secret).listJobs({})).jobs).toEqual([]);
      expect((await admin.listTokens({})).tokens.map((t) => t.name).sort()).toEqual(["laptop", "operator"]);
    } finally {
      await studio.stop();
    }
  });

  test("loopback open mode is logged loudly once, as a child process", async () => {
    const run = await spawnServer(["--host", "127.0.0.1", "--data-dir", tempDir()]);
    const warnings = run.lines.filter((l) => (l as { msg: string }).msg.startsWith("auth is OFF"));
    expect(warnings.length).toBe(1);
    expect(run.stderr).not.toContain("stu_");
  });

  test("off loopback with no tokens: refuses to run open, creates an admin token and prints it once to stderr", async () => {
    const dataDir = tempDir();
    const first = await spawnServer(["--host", "0.0.0.0", "--data-dir", dataDir]);
    const secret = /(stu_[A-Za-z0-9_-]{43})/.exec(first.stderr)?.[1];
    expect(secret).toBeDefined();
    expect(first.log).not.toContain(secret!);
    expect(first.log).not.toContain("auth is OFF");

    const second = await spawnServer(["--host", "0.0.0.0", "--data-dir", dataDir]);
    expect(second.stderr).not.toContain("stu_");

    // The printed secret is a working admin token and anonymous callers are refused.
    const studio = await startAuthStudio({ dataDir });
    try {
      expect((await clientFor(TokenService, studio.url, secret).listTokens({})).tokens.map((t) => t.name)).toEqual(["bootstrap admin"]);
      const anon = await clientFor(JobService, studio.url).listJobs({}).catch((e) => ConnectError.from(e).code);
      expect(anon).toBe(Code.Unauthenticated);
    } finally {
      await studio.stop();
    }
  });

  test("off loopback with --admin-token (env): stored hashed, nothing printed, auth enforced", async () => {
    const dataDir = tempDir();
    const admin = `env-admin-${"k".repeat(40)}`;
    const run = await spawnServer(["--host", "0.0.0.0", "--data-dir", dataDir], { STUDIO_ADMIN_TOKEN: admin });
    expect(run.stderr).not.toContain("stu_");
    expect(run.log).not.toContain(admin);
    const studio = await startAuthStudio({ dataDir });
    try {
      expect((await clientFor(TokenService, studio.url, admin).listTokens({})).tokens.length).toBe(1);
      const dump = JSON.stringify(sqliteOf(studio).query("SELECT * FROM apiTokens").all());
      expect(dump).not.toContain(admin);
    } finally {
      await studio.stop();
    }
  });
});
