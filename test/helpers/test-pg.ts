import { SQL, spawnSync } from "bun";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { freePort } from "../../worker/engines/free-port.js";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's PostgreSQL 15 server binaries (`bun run test` installs the package: scripts/system-deps.sh). */
export const PG_BIN = process.env.STUDIO_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** A private PostgreSQL cluster for tests: a temp dir, trust auth, loopback on a free port. */
export interface TestPg {
  readonly port: number;
  readonly dir: string;
  /** postgres://postgres@127.0.0.1:port/<database> */
  url(database?: string): string;
  /** A new database with a unique name (empty, or a copy of `template`); its URL. */
  createDatabase(prefix?: string, template?: string): Promise<string>;
  /** pg_ctl stop: "fast" lets clients be told, "immediate" is a crash. The data dir stays. */
  stop(mode?: "fast" | "immediate"): void;
  /** Starts it again on the same port and data dir (after stop). */
  start(): void;
  /** Stops it (immediate) and removes its data dir. */
  destroy(): void;
  /** The server's processes now: the postmaster and its children (backends, writers), for CPU figures. */
  pids(): number[];
}

/** Whether this machine can run the test cluster; tests that need it fail loudly when it cannot. */
export function testPgAvailable(): boolean {
  return existsSync(join(PG_BIN, "initdb")) && existsSync(join(PG_BIN, "pg_ctl"));
}

/** Runs a PostgreSQL program as the postgres user (initdb refuses root), with no shell in between. */
function asPostgres(argv: string[]): { ok: boolean; output: string } {
  const cmd = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...argv] : argv;
  const r = spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, output: `${r.stdout.toString()}${r.stderr.toString()}` };
}

let sequence = 0;

/**
 * initdb into a temp dir (as the postgres user when running as root), then pg_ctl start on
 * a free loopback port with trust auth and durability traded for speed (fsync off: a test
 * cluster never outlives its run). A watchdog process stops it and removes the dir if this
 * process dies without doing so.
 */
export async function startTestPg({
  durable = false,
  settings: extra = [],
}: {
  /** Keep fsync and full-page writes (a cluster restarted under load, a benchmark). */
  durable?: boolean;
  /** More `-c name=value` server settings. */
  settings?: string[];
} = {}): Promise<TestPg> {
  if (!testPgAvailable())
    throw new Error(`PostgreSQL 15 server binaries are missing in ${PG_BIN}: install Debian's postgresql (scripts/system-deps.sh)`);
  const dir = mkdtempSync(join(tmpdir(), "studio-pg-"));
  const data = join(dir, "data");
  if (process.getuid?.() === 0) {
    const id = (flag: string) => Number(Bun.spawnSync(["id", flag, "postgres"]).stdout.toString().trim());
    chownSync(dir, id("-u"), id("-g"));
  }
  const init = asPostgres([join(PG_BIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
  if (!init.ok) throw new Error(`initdb failed:\n${init.output}`);
  const port = await freePort();
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c max_connections=300",
    ...(durable ? [] : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
    ...extra.map((x) => `-c ${x}`),
  ].join(" ");
  const pgCtl = (args: string[]) => asPostgres([join(PG_BIN, "pg_ctl"), "-D", data, ...args]);
  const start = () => {
    const r = pgCtl(["-o", settings, "-l", join(dir, "server.log"), "-w", "-t", "30", "start"]);
    if (!r.ok) throw new Error(`pg_ctl start failed:\n${r.output}`);
  };
  start();
  const watchdog = Bun.spawn([process.execPath, join(import.meta.dir, "pg-watchdog.ts"), String(process.pid), join(PG_BIN, "pg_ctl"), data, dir], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  watchdog.unref();
  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let destroyed = false;
  let admin: SQL | undefined;
  return {
    port,
    dir,
    url,
    async createDatabase(prefix = "t", template?: string) {
      const name = `${prefix}_${process.pid}_${++sequence}`;
      admin ??= new SQL({ url: url(), max: 1 });
      await admin.unsafe(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ""}`);
      return url(name);
    },
    stop(mode = "fast") {
      pgCtl(["-m", mode, "-w", "stop"]);
    },
    start,
    pids() {
      let postmaster: number;
      try {
        postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      } catch {
        return [];
      }
      const out = [postmaster];
      for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
          if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster) out.push(Number(entry));
        } catch {
          // Gone meanwhile.
        }
      }
      return out;
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      void admin?.close();
      pgCtl(["-m", "immediate", "-w", "stop"]);
      watchdog.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<TestPg> | undefined;

/**
 * One cluster for the whole test run (bun test runs every file in one process): started by
 * the first suite that asks, destroyed by test/preload.ts after the last file. Suites get
 * isolation from a fresh database each (createDatabase), not from a cluster each.
 */
export function sharedTestPg(): Promise<TestPg> {
  shared ??= startTestPg();
  return shared;
}

/** Destroys the shared cluster if one was started (test/preload.ts calls it once, at the end of the run). */
export async function destroySharedTestPg(): Promise<void> {
  const pg = shared;
  shared = undefined;
  if (pg) (await pg).destroy();
}
