import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";

/**
 * Keeps the studio's files to its own user: the data dir 0700 (created so, or narrowed when it is
 * ours and open to others: it holds prompts, outputs and token hashes), and the SQLite database
 * 0600, created so before SQLite opens it (SQLite gives its -wal and -shm files the database's
 * mode). Files of an older studio that are still open to others are narrowed too. A dir or file
 * owned by another user is left as it is (the operator chose it).
 */
export function keepPrivate(dataDir: string, dbPath: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  narrow(dataDir, 0o700);
  if (!existsSync(dbPath)) closeSync(openSync(dbPath, "a", 0o600));
  for (const path of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) narrow(path, 0o600);
}

function narrow(path: string, mode: number): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    return;
  }
  const ours = typeof process.getuid !== "function" || st.uid === process.getuid();
  if (ours && (st.mode & 0o777 & ~mode) !== 0) chmodSync(path, mode);
}
