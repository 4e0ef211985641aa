import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Issue 22: the README's quick start is two commands that do everything on a fresh machine, and
 * they, package.json, scripts/ and .ci/run agree. Then the system package step of `bun run test`:
 * it installs what is missing when it can (root with apt-get), and otherwise stops before
 * running anything with one line naming what is missing and the command that installs it.
 */
const REPO = resolve(import.meta.dir, "../..");
const read = (path: string) => readFileSync(join(REPO, path), "utf8");
const pkg = JSON.parse(read("package.json")) as { packageManager: string; scripts: Record<string, string> };
const BUN_VERSION = pkg.packageManager.replace(/^bun@/, "");

/** The command lines of the first ```sh block under "## Quick start", without their trailing comments. */
function quickStartCommands(): string[] {
  const readme = read("README.md");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section.slice(0, section.indexOf("\n## ", 3)));
  if (!block) throw new Error("README: no ```sh block under ## Quick start");
  return block[1]!
    .split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** The file a `bun run NAME` script runs (its first argument that is a path in the repo). */
function scriptFile(name: string): string {
  const command = pkg.scripts[name];
  if (!command) throw new Error(`package.json has no script "${name}"`);
  const file = command.split(/\s+/).find((word) => /\.(ts|sh)$/.test(word));
  if (!file) throw new Error(`script "${name}" (${command}) runs no file of this repo`);
  return file;
}

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe("the README's quick start and the scripts agree", () => {
  test("two commands: Bun (the pinned version) from npm, the packages and the server; then the tests", () => {
    expect(quickStartCommands()).toEqual([`npm install -g bun@${BUN_VERSION} && bun install && bun run server`, "bun run test"]);
  });

  test("the scripts the commands name exist and run what the README says", () => {
    expect(scriptFile("server")).toBe("server/main.ts");
    expect(scriptFile("test")).toBe("scripts/test.sh");
    for (const name of ["server", "test", "demo"]) expect(existsSync(join(REPO, scriptFile(name)))).toBe(true);
    // The README names every `bun run X` it mentions in the section; each is a script.
    const readme = read("README.md");
    const section = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("## Layout"));
    for (const [, name] of section.matchAll(/bun run ([a-z:-]+)/g)) expect(Object.keys(pkg.scripts)).toContain(name!);
    // scripts/test.sh: system packages first, then the static checks, then the suite.
    const testSh = read("scripts/test.sh");
    const order = ["scripts/system-deps.sh", "scripts/check.sh", "bun test"].map((s) => testSh.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  test(".ci/run installs the same Bun, the packages, and then runs exactly the README's test command", () => {
    const ci = read(".ci/run");
    expect(ci).toContain(`node -p "require('./package.json').packageManager.split('@')[1]"`);
    expect(ci).toContain(`npm install -g "bun@$BUN_VERSION"`);
    expect(ci).toContain("bun install --frozen-lockfile");
    const lines = ci.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    expect(lines.at(-1)).toBe("bun run test");
    // No second list of system packages anywhere but scripts/system-deps.sh.
    expect(ci).not.toContain("apt-get");
  });

  test("the README lists the system packages scripts/system-deps.sh installs", () => {
    const listed = Bun.spawnSync(["bash", join(REPO, "scripts/system-deps.sh"), "--packages"]).stdout.toString().trim().split("\n");
    expect(listed).toContain("chromium");
    const readme = read("README.md");
    const section = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("## Layout"));
    for (const p of listed) expect(section).toContain(p);
  });
});

describe("`bun run test` and the system packages", () => {
  /** A PATH holding only bash, dirname and (if asked) apt-get: the programs found through PATH are then missing. */
  function barePath(withAptGet: string | undefined): string {
    const bin = mkdtempSync(join(tmpdir(), "bare-path-"));
    temps.push(bin);
    chmodSync(bin, 0o755);
    for (const prog of ["bash", "dirname"]) symlinkSync(Bun.which(prog)!, join(bin, prog));
    if (withAptGet) {
      writeFileSync(join(bin, "apt-get"), withAptGet);
      chmodSync(join(bin, "apt-get"), 0o755);
    }
    return bin;
  }

  const PATH_FOUND = "redis-server, openssl, curl, protoc, grpc_python_plugin";
  const PATH_PACKAGES = "redis-server openssl curl protobuf-compiler protobuf-compiler-grpc";
  const asRoot = process.getuid?.() === 0;

  test("without root: one line names what is missing and the sudo apt-get command, and nothing else runs", () => {
    const bin = barePath("#!/bin/sh\nexit 99\n");
    const argv = ["bash", join(REPO, "scripts/test.sh")];
    // As root, run it as nobody (who cannot install); otherwise as this user.
    const run = Bun.spawnSync(asRoot ? [Bun.which("runuser")!, "-u", "nobody", "--", "/usr/bin/env", `PATH=${bin}`, ...argv] : argv, {
      env: { PATH: bin },
      cwd: REPO,
    });
    const out = run.stdout.toString() + run.stderr.toString();
    expect(out).toBe(
      `bun run test: missing ${PATH_FOUND}: install them first with: sudo apt-get install -y --no-install-recommends ${PATH_PACKAGES}\n`,
    );
    expect(run.exitCode).toBe(1);
  });

  test("without apt-get: one line names what is missing and the Debian packages", () => {
    const bin = barePath(undefined);
    const run = Bun.spawnSync(["bash", join(REPO, "scripts/test.sh")], { env: { PATH: bin }, cwd: REPO });
    const out = run.stdout.toString() + run.stderr.toString();
    const sudo = asRoot ? "" : "sudo ";
    expect(out).toBe(
      `bun run test: missing ${PATH_FOUND}: install the Debian packages ${PATH_PACKAGES} (on Debian: ${sudo}apt-get install -y --no-install-recommends ${PATH_PACKAGES})\n`,
    );
    expect(run.exitCode).toBe(1);
  });

  test.skipIf(!asRoot)("as root with apt-get: the missing packages are installed (apt-get update, then install), and it goes on", () => {
    // A recording apt-get (the real one would change this machine): "installing" links the real programs in.
    const log = join(mkdtempSync(join(tmpdir(), "apt-log-")), "calls");
    temps.push(join(log, ".."));
    const links = ["redis-server", "openssl", "curl", "protoc", "grpc_python_plugin"]
      .map((p) => `'${Bun.which("ln")}' -sf '${Bun.which(p)}' "$(dirname "$0")/${p}"`)
      .join("\n");
    const bin = barePath(`#!/bin/bash\necho "$*" >> '${log}'\nif [ "$1" = install ]; then\n${links}\nfi\n`);
    const run = Bun.spawnSync(["bash", join(REPO, "scripts/system-deps.sh")], { env: { PATH: bin }, cwd: REPO });
    expect(run.stdout.toString()).toBe(`installing ${PATH_PACKAGES} from apt (missing: ${PATH_FOUND})\n`);
    expect(run.exitCode).toBe(0);
    expect(readFileSync(log, "utf8")).toBe(`update -qq\ninstall -y -qq --no-install-recommends ${PATH_PACKAGES}\n`);
  });
});
