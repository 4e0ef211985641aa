import type { StudioDb } from "../db/open.js";
import { outputsFromJson } from "../jobs/job-row.js";
import type { OutputStore } from "./output-store.js";

/** Whether some job row names this digest among its outputs (digests are hex, so LIKE needs no escaping). */
export function isOutputReferenced(db: StudioDb, sha256: string): boolean {
  const sha = sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha)) return false;
  return (
    db.sqlite
      .query<{ one: number }, [string]>(`SELECT 1 AS one FROM graphicsJobs WHERE outputs LIKE '%' || ? || '%' LIMIT 1`)
      .get(sha) !== null
  );
}

/**
 * Startup sweep: deletes stored outputs that no job row references. Outputs are
 * moved into the store just before their job's complete commits (OutputStaging.commit),
 * so a crash in between leaves such a file; nothing else puts one there, and jobs
 * are never deleted, so an unreferenced file is garbage. Runs before the studio
 * serves, so no commit is in flight. Returns the digests removed.
 */
export function sweepUnreferencedOutputs(db: StudioDb, store: OutputStore): string[] {
  const referenced = new Set<string>();
  const rows = db.sqlite.query<{ outputs: string }, []>(`SELECT outputs FROM graphicsJobs WHERE outputs != '[]'`);
  for (const row of rows.iterate()) for (const o of outputsFromJson(row.outputs)) referenced.add(o.sha256.toLowerCase());
  const removed: string[] = [];
  for (const sha of [...store.storedDigests()]) {
    if (referenced.has(sha)) continue;
    store.remove(sha);
    removed.push(sha);
  }
  return removed;
}
