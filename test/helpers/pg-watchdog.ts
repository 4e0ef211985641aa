/**
 * Stops a test PostgreSQL cluster and removes its dir once the test process that started it
 * is gone (killed, crashed), so an interrupted run leaves no server behind.
 *   bun pg-watchdog.ts <parent pid> <pg_ctl> <data dir> <dir to remove>
 */
import { rmSync } from "node:fs";

const [parent, pgCtl, data, dir] = process.argv.slice(2) as [string, string, string, string];
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
while (alive(Number(parent))) await Bun.sleep(1000);
const cmd = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", pgCtl, "-D", data, "-m", "immediate", "stop"] : [pgCtl, "-D", data, "-m", "immediate", "stop"];
Bun.spawnSync(cmd, { stdio: ["ignore", "ignore", "ignore"] });
rmSync(dir, { recursive: true, force: true });
