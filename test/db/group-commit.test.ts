import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GroupCommit } from "../../server/db/group-commit.js";

let dir: string;
let db: Database;
let other: Database;
let group: GroupCommit;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "group-commit-"));
  db = new Database(join(dir, "g.db"), { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  // A second connection sees only what has committed.
  other = new Database(join(dir, "g.db"), { strict: true });
  group = new GroupCommit(db);
});
afterEach(() => {
  other.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const committed = (k: string) => other.query<{ v: number }, [string]>("SELECT v FROM t WHERE k = ?").get(k)?.v;
const insert = (k: string, v: number) => () => db.query("INSERT INTO t (k, v) VALUES (?, ?) RETURNING v").get(k, v) as { v: number };

describe("GroupCommit", () => {
  test("the writes of one turn run in order in one transaction, and each caller is answered after its commit", async () => {
    const seen: (number | undefined)[] = [];
    const a = group.run(insert("a", 1));
    const b = group.run(() => {
      // Inside the group: a's row is there for this connection, not yet for another.
      seen.push(db.query<{ v: number }, [string]>("SELECT v FROM t WHERE k = ?").get("a")?.v, committed("a"));
      expect(db.inTransaction).toBe(true);
      return insert("b", 2)();
    });
    expect(committed("a")).toBeUndefined();
    const answered = await Promise.all([a, b].map((p) => p.then((r) => ({ r, committedA: committed("a"), open: db.inTransaction }))));
    expect(seen).toEqual([1, undefined]);
    expect(answered).toEqual([
      { r: { v: 1 }, committedA: 1, open: false },
      { r: { v: 2 }, committedA: 1, open: false },
    ]);
  });

  test("an operation that throws fails alone and leaves nothing; the others commit", async () => {
    await group.run(insert("a", 1));
    const results = await Promise.allSettled([
      group.run(insert("b", 2)),
      group.run(insert("a", 9)), // the primary key refuses it: SQLite backs that statement out
      group.run(() => {
        throw new Error("refused in JavaScript");
      }),
      group.run(insert("c", 3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect(other.query("SELECT k, v FROM t ORDER BY k").all()).toEqual([
      { k: "a", v: 1 },
      { k: "b", v: 2 },
      { k: "c", v: 3 },
    ]);
  });

  test("a transaction it cannot open fails every operation of the turn, and the next turn works again", async () => {
    other.exec("BEGIN IMMEDIATE"); // another writer holds the lock
    db.exec("PRAGMA busy_timeout = 0");
    const failed = await Promise.allSettled([group.run(insert("a", 1)), group.run(insert("b", 2))]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    other.exec("ROLLBACK");
    expect(await group.run(insert("a", 1))).toEqual({ v: 1 });
    expect(committed("a")).toBe(1);
  });

  test("a soon write commits once the code running now is done, with what was queued before it, not at the end of the turn", async () => {
    const seen: string[] = [];
    setImmediate(() => seen.push(`end of turn: a ${committed("a")}, b ${committed("b")}, c ${committed("c")}`));
    const a = group.run(insert("a", 1));
    const b = group.run(insert("b", 2), { soon: true });
    const c = group.run(insert("c", 3), { soon: true });
    expect(committed("a")).toBeUndefined();
    await Promise.resolve();
    // One transaction for the three, in the order they came, before anything of the next turn.
    seen.push(`after the code: a ${committed("a")}, b ${committed("b")}, c ${committed("c")}`);
    expect(await Promise.all([a, b, c])).toEqual([{ v: 1 }, { v: 2 }, { v: 3 }]);
    const later = group.run(insert("d", 4));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["after the code: a 1, b 2, c 3", "end of turn: a 1, b 2, c 3"]);
    // What comes after a soon commit is grouped at the end of the turn as before.
    expect(await later).toEqual({ v: 4 });
  });

  test("flush commits what is queued at once (before the database closes)", async () => {
    const p = group.run(insert("a", 1));
    group.flush();
    expect(committed("a")).toBe(1);
    expect(await p).toEqual({ v: 1 });
  });
});
