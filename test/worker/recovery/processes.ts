import { killGroup, spawnGroup, type GroupChild } from "../../../worker/engines/process-group.js";
import { processStartTime, readProcStat, type ProcessIdentity } from "../../../worker/process-identity.js";

const groups: GroupChild[] = [];

/** Kills what sleeper() started (each test file's afterEach). */
export async function killSleepers(): Promise<void> {
  for (const g of groups.splice(0)) await killGroup(g, 0);
}

/** A real process group (a sleeping leader) as an engine would start it; killSleepers() ends it. */
export async function sleeper(): Promise<GroupChild> {
  const g = await spawnGroup("sleep", ["300"]);
  groups.push(g);
  return g;
}

/** The identity of a worker that has died: a real process, started and then killed and reaped. */
export async function deadWorker(): Promise<ProcessIdentity> {
  const g = await spawnGroup("sleep", ["300"]);
  const startTime = processStartTime(g.pid)!;
  await killGroup(g, 0);
  return { pid: g.pid, startTime };
}

/** True while the process runs (a zombie does not count). */
export function running(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z";
}
