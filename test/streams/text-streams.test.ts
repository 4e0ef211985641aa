import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { StreamedTextSchema, TextDeltaSchema, type TextDelta } from "../../gen/studio/v1/job_pb.js";
import { JobEvents } from "../../server/events/job-events.js";
import { openSqliteStorage } from "../../server/storage/sqlite-storage.js";
import type { Storage } from "../../server/storage/storage.js";
import { ClusterTextBus } from "../../server/streams/cluster-text-bus.js";
import { TextStreams } from "../../server/streams/text-streams.js";
import { openTestPgStorage } from "../helpers/pg-storage.js";

const logger = pino({ level: "silent" });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const piece = (jobId: string, f: { text?: string; reasoning?: string; to?: number; ro?: number; attempt?: number; tokens?: number }) =>
  create(TextDeltaSchema, {
    jobId,
    attempt: f.attempt ?? 1,
    text: f.text ?? "",
    reasoning: f.reasoning ?? "",
    textOffset: BigInt(f.to ?? 0),
    reasoningOffset: BigInt(f.ro ?? 0),
    tokens: f.tokens ?? 1,
  });

function sqliteStorage(events: JobEvents): Storage {
  const dir = mkdtempSync(join(tmpdir(), "studio-texts-"));
  const storage = openSqliteStorage(dir, { events, now: Date.now });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => storage.close());
  return storage;
}

/** A store write has happened: the stream wrote after its flush interval (no sleeps: poll the store's own answer). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await read();
    if (ok(v)) return v;
    await Bun.sleep(10);
  }
  throw new Error("the condition never held");
}

for (const [name, open] of [
  ["SQLite", async (events: JobEvents) => sqliteStorage(events)],
  [
    "PostgreSQL",
    async (events: JobEvents) => {
      const { storage } = await openTestPgStorage({ events });
      cleanups.push(() => storage.close());
      return storage;
    },
  ],
] as const) {
  describe(`text store on ${name}`, () => {
    test("save, load, a write of an older attempt changes nothing, remove", async () => {
      const { texts } = await open(new JobEvents());
      expect(await texts.load("j1")).toBeUndefined();
      await texts.save("j1", create(StreamedTextSchema, { attempt: 2, text: "héllo", reasoning: "hm", tokens: 3 }));
      expect(await texts.load("j1")).toMatchObject({ attempt: 2, text: "héllo", reasoning: "hm", tokens: 3 });
      await texts.save("j1", create(StreamedTextSchema, { attempt: 1, text: "stale", tokens: 1 }));
      expect((await texts.load("j1"))?.text).toBe("héllo");
      await texts.save("j1", create(StreamedTextSchema, { attempt: 3, text: "again", tokens: 1 }));
      expect((await texts.load("j1"))?.text).toBe("again");
      await texts.remove("j1");
      expect(await texts.load("j1")).toBeUndefined();
    });

    test("a stream keeps a running job's text, writes it while it runs and when the job fails, and drops it when it succeeds", async () => {
      const events = new JobEvents();
      const storage = await open(events);
      const streams = new TextStreams({ events, store: storage.texts, logger, flushMs: 20 });
      streams.start();
      cleanups.push(() => streams.stop());
      const seen: TextDelta[] = [];
      const all: string[] = [];
      streams.subscribe("a", (d) => seen.push(d));
      streams.subscribe(undefined, (d) => all.push(d.jobId));
      events.publish({ jobId: "a", status: "RUNNING", model: "m" });
      expect(streams.modelOf("a")).toBe("m");
      streams.receive(piece("a", { reasoning: "think", tokens: 1 }));
      streams.receive(piece("a", { text: "Hé", ro: 5, tokens: 2 }));
      streams.receive(piece("a", { text: "!", to: 3, ro: 5, tokens: 3 }));
      streams.receive(piece("b", { text: "other" }));
      expect(seen.map((d) => d.text + d.reasoning)).toEqual(["think", "Hé", "!"]);
      expect(all).toEqual(["a", "a", "a", "b"]);
      expect(streams.current("a")).toMatchObject({ text: "Hé!", reasoning: "think", tokens: 3, attempt: 1 });
      // Written about once per flush interval while it runs.
      expect((await until(() => storage.texts.load("a"), (t) => t?.text === "Hé!"))?.reasoning).toBe("think");
      streams.receive(piece("a", { text: " more", to: 4, ro: 5, tokens: 4 }));
      events.publish({ jobId: "a", status: "FAILED", model: "m" });
      expect(streams.current("a")).toBeUndefined();
      expect(streams.modelOf("a")).toBeUndefined();
      expect((await until(() => storage.texts.load("a"), (t) => t?.text === "Hé! more"))?.tokens).toBe(4);
      expect((await streams.read("a"))?.text).toBe("Hé! more");
      // A succeeded job's output holds its text: what was kept goes.
      events.publish({ jobId: "b", status: "RUNNING", model: "m" });
      await until(() => storage.texts.load("b"), (t) => t?.text === "other");
      events.publish({ jobId: "b", status: "SUCCEEDED", model: "m" });
      await until(() => storage.texts.load("b"), (t) => t === undefined);
    });
  });
}

describe("text streams", () => {
  test("a new attempt starts from nothing; older attempts and repeats are dropped; a gap starts a fragment that is never written", async () => {
    const events = new JobEvents();
    const storage = sqliteStorage(events);
    const streams = new TextStreams({ events, store: storage.texts, logger, flushMs: 10_000 });
    streams.start();
    cleanups.push(() => streams.stop());
    const seen: string[] = [];
    streams.subscribe("j", (d) => seen.push(`${d.attempt}:${d.text}`));
    streams.receive(piece("j", { text: "one" }));
    streams.receive(piece("j", { text: "one" }));
    streams.receive(piece("j", { text: "two", attempt: 2 }));
    streams.receive(piece("j", { text: "late", to: 3, attempt: 1 }));
    expect(seen).toEqual(["1:one", "2:two"]);
    expect(streams.current("j")?.text).toBe("two");
    streams.receive(piece("j", { text: "far", to: 50, attempt: 2 }));
    // A fragment: not whole, so current() says nothing and nothing is written for it.
    expect(streams.current("j")).toBeUndefined();
    await streams.stop();
    expect(await storage.texts.load("j")).toBeUndefined();
  });

  test("pieces past the limit are not kept or relayed", async () => {
    const events = new JobEvents();
    const storage = sqliteStorage(events);
    const streams = new TextStreams({ events, store: storage.texts, logger });
    streams.start();
    cleanups.push(() => streams.stop());
    let relayed = 0;
    streams.subscribe("big", () => relayed++);
    const chunk = "x".repeat(1024 * 1024);
    for (let i = 0; i < 5; i++) streams.receive(piece("big", { text: chunk, to: i * chunk.length }));
    expect(relayed).toBe(4);
    expect(streams.current("big")?.text.length).toBe(4 * chunk.length);
  });
});

describe("between replicas on PostgreSQL", () => {
  test("a piece a worker sends to replica A reaches a listener on replica B, in order, joined into few broadcasts", async () => {
    const eventsA = new JobEvents();
    const { storage: a, url } = await openTestPgStorage({ events: eventsA });
    cleanups.push(() => a.close());
    const eventsB = new JobEvents();
    const { storage: b } = await openTestPgStorage({ events: eventsB }, url);
    cleanups.push(() => b.close());
    const onA = new TextStreams({ events: eventsA, store: a.texts, bus: new ClusterTextBus(a.cluster!, logger), logger });
    const onB = new TextStreams({ events: eventsB, store: b.texts, bus: new ClusterTextBus(b.cluster!, logger), logger });
    onA.start();
    onB.start();
    cleanups.push(() => onA.stop(), () => onB.stop());
    const got: TextDelta[] = [];
    let arrived!: () => void;
    const all = new Promise<void>((resolve) => (arrived = resolve));
    let text = "";
    onB.subscribe("job", (d) => {
      got.push(d);
      text += d.text;
      if (text.length === 2000 + 4500) arrived();
    });
    let to = 0;
    for (let i = 0; i < 2000; i++) {
      onA.receive(piece("job", { text: "t", to, tokens: i + 1 }));
      to += 1;
    }
    // One piece larger than a notification takes: split into several.
    onA.receive(piece("job", { text: "é".repeat(4500), to, tokens: 2001 }));
    await all;
    expect(got.length).toBeLessThan(2000);
    expect(onB.current("job")?.text).toBe(`${"t".repeat(2000)}${"é".repeat(4500)}`);
    expect(onB.current("job")?.tokens).toBe(2001);
  });
});
