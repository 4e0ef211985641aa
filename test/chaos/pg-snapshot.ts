import { SQL } from "bun";
import { join } from "node:path";
import { filesUnder, type ChaosRow, type StoreSnapshot } from "./invariants.js";

/**
 * The PostgreSQL database of stopped replicas, read as the invariants want it: job rows, every
 * stored output's bytes (joined from their chunks), the blobs not yet claimed by a committed
 * job, and temp files left in each replica's scratch data dir.
 */
export async function pgSnapshot(url: string, scratchDirs: readonly string[]): Promise<StoreSnapshot> {
  const db = new SQL({ url, max: 1 });
  try {
    const rows = (await db.unsafe(
      `SELECT "id", "model", "status", "task", "modelSource", "attempts", "error", "outputs", "leaseId" FROM "graphicsJobs"`,
    )) as ChaosRow[];
    const blobs = (await db.unsafe(`SELECT "sha256", "size", "verified" FROM "studioOutputBlobs"`)) as { sha256: string; size: string; verified: boolean }[];
    const chunks = (await db.unsafe(`SELECT "sha256", "data" FROM "studioOutputChunks" ORDER BY "sha256", "seq"`)) as { sha256: string; data: Uint8Array }[];
    const parts = new Map<string, Uint8Array[]>();
    for (const c of chunks) {
      const list = parts.get(c.sha256) ?? [];
      list.push(c.data);
      parts.set(c.sha256, list);
    }
    const stored = new Map(blobs.map((b) => [b.sha256, Buffer.concat(parts.get(b.sha256) ?? [])] as const));
    const layoutProblems: string[] = [];
    for (const b of blobs)
      if (stored.get(b.sha256)!.length !== Number(b.size)) layoutProblems.push(`output ${b.sha256}: ${stored.get(b.sha256)!.length} bytes in chunks, its row says ${b.size}`);
    for (const dir of scratchDirs)
      for (const p of filesUnder(join(dir, "outputs")).filter((f) => f.startsWith(".tmp/")))
        layoutProblems.push(`temp file left in ${dir}/outputs: ${p}`);
    return { rows: rows.map((r) => ({ ...r, attempts: Number(r.attempts) })), stored, pending: new Set(blobs.filter((b) => !b.verified).map((b) => b.sha256)), layoutProblems };
  } finally {
    await db.close();
  }
}
