/**
 * The checkpoint thread's body (see checkpointer.ts): its own connection to the studio's file,
 * a PASSIVE checkpoint every `intervalMs`, a last one and a clean close when told to stop.
 */
import { Database } from "bun:sqlite";
import { parentPort, workerData } from "node:worker_threads";

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const db = new Database(path, { strict: true });
db.exec("PRAGMA busy_timeout = 5000");
const checkpoint = () => {
  try {
    db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
  } catch (err) {
    parentPort?.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort?.on("message", (m: { type: string }) => {
  if (m.type !== "stop") return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort?.postMessage({ type: "stopped" });
  parentPort?.close();
});
parentPort?.postMessage({ type: "ready" });
