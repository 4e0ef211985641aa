import { mkdirSync, rmSync } from "node:fs";

/**
 * Mounts a tmpfs of `size` (like "160k") at `dir`, creating it; `ok: false` with the reason where
 * mount is refused (not root, no CAP_SYS_ADMIN, no mount program). A probe mount is undone at once.
 */
export function tryMountTmpfs(dir: string, size: string, { probe = dir.includes("-probe-") } = {}): { ok: true } | { ok: false; reason: string } {
  try {
    mkdirSync(dir, { recursive: true });
    const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) return { ok: false, reason: `mount -t tmpfs refused: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}` };
    if (probe) unmount(dir);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot run mount: ${(err as Error).message}` };
  }
}

/** Unmounts a tmpfs from tryMountTmpfs (lazily, so an open handle cannot keep it) and removes the dir. */
export function unmount(dir: string): void {
  Bun.spawnSync(["umount", "-l", dir], { stdout: "pipe", stderr: "pipe" });
  rmSync(dir, { recursive: true, force: true });
}
