import { chmodSync, lstatSync, mkdirSync, statSync, type Stats } from "node:fs";

/** A directory the worker must not use: it names the directory and what is wrong. */
export class UnsafeDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeDirError";
  }
}

/** This process's uid, or undefined where there are no uids (then ownership cannot be checked). */
export function currentUid(): number | undefined {
  return typeof process.getuid === "function" ? process.getuid() : undefined;
}

/** Whether a stat'ed file belongs to this process's user (always true where there are no uids). */
export function ownedByUs(st: Pick<Stats, "uid">): boolean {
  const uid = currentUid();
  return uid === undefined || st.uid === uid;
}

/**
 * Makes sure `dir` is safe for the worker to act on what it finds there: it is created 0700 when
 * missing; an existing one (or the symlink naming it) owned by another user is refused, since
 * that user could plant files the worker would trust (owner records that name process groups to
 * kill, cached files). `private` dirs (the work dir) are also narrowed to 0700 when they are
 * ours and open to others; shared ones (the cache dir) are refused when world-writable.
 * Returns a note of what it changed, if anything, for the log.
 */
export function ensureSafeDir(dir: string, flag: string, { private: isPrivate }: { private: boolean }): string | undefined {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  const link = lstatSync(dir);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    throw new UnsafeDirError(`${flag} ${dir}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new UnsafeDirError(`${flag} ${dir} is not a directory`);
  const uid = currentUid();
  for (const [what, s] of [["it", st], ["the symlink naming it", link]] as const) {
    if (!ownedByUs(s))
      throw new UnsafeDirError(
        `${flag} ${dir}: ${what} is owned by uid ${s.uid}, not by this user (uid ${uid}); another user could plant files ` +
          `the worker acts on. Use a directory of your own (the default is under your cache dir).`,
      );
  }
  if (created !== undefined) return undefined;
  if (isPrivate && (st.mode & 0o077) !== 0) {
    chmodSync(dir, 0o700);
    return `${flag} ${dir} was open to other users (mode ${(st.mode & 0o777).toString(8)}); narrowed to 0700`;
  }
  if ((st.mode & 0o002) !== 0)
    throw new UnsafeDirError(
      `${flag} ${dir} is writable by every user (mode ${(st.mode & 0o777).toString(8)}); another user could plant files ` +
        `the worker acts on. Remove the write permission for others (chmod o-w) or use another directory.`,
    );
  return undefined;
}
