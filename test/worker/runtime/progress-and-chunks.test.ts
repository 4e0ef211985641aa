import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import pino from "pino";
import { JobPhase, JobProgressSchema } from "../../../gen/studio/v1/job_pb.js";
import { MAX_CHUNK_BYTES, outputChunks } from "../../../worker/runtime/output-chunks.js";
import { ProgressThrottle, type ProgressUpdate } from "../../../worker/runtime/progress-throttle.js";
import { BarView, barState } from "../../../worker/ui/bar-view.js";
import { LogView } from "../../../worker/ui/log-view.js";
import { humanLine } from "../../../worker/ui/logger.js";

describe("outputChunks", () => {
  const ids = { jobId: "j1", leaseId: "l1" };

  test("splits an output into in-order chunks of at most 1 MiB, each with the whole output's size and digest", () => {
    const data = Uint8Array.from({ length: 2 * MAX_CHUNK_BYTES + 5 }, (_, i) => i & 0xff);
    const chunks = [...outputChunks(ids, 3, "image/png", data)];
    const digest = createHash("sha256").update(data).digest("hex");
    expect(chunks.map((c) => [Number(c.offset), c.data.byteLength])).toEqual([
      [0, MAX_CHUNK_BYTES],
      [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES],
      [2 * MAX_CHUNK_BYTES, 5],
    ]);
    for (const c of chunks) expect(c).toMatchObject({ jobId: "j1", leaseId: "l1", index: 3, mimeType: "image/png", sha256: digest, totalSize: BigInt(data.byteLength) });
    expect(Buffer.concat(chunks.map((c) => c.data))).toEqual(Buffer.from(data));
  });

  test("an empty output is one empty chunk; chunk sizes past 1 MiB are refused", () => {
    const chunks = [...outputChunks(ids, 0, "text/plain", new Uint8Array())];
    expect(chunks.length).toBe(1);
    expect(chunks[0]!.totalSize).toBe(0n);
    expect(() => [...outputChunks(ids, 0, "x", new Uint8Array(1), MAX_CHUNK_BYTES + 1)]).toThrow(RangeError);
  });
});

describe("ProgressThrottle", () => {
  test("passes a new phase at once, at most one update per interval within a phase, and the latest one after it", () => {
    let now = 0;
    const sent: ProgressUpdate[] = [];
    const th = new ProgressThrottle((u) => sent.push(u), 250, () => now);
    th.push({ phase: JobPhase.DOWNLOADING, bytesDone: 1 });
    now = 100;
    th.push({ phase: JobPhase.DOWNLOADING, bytesDone: 2 });
    th.push({ phase: JobPhase.DOWNLOADING, bytesDone: 3 });
    expect(sent.map((u) => u.bytesDone)).toEqual([1]);
    now = 120;
    th.push({ phase: JobPhase.RUNNING, step: 1 });
    expect(sent.map((u) => u.phase)).toEqual([JobPhase.DOWNLOADING, JobPhase.RUNNING]);
    now = 200;
    th.push({ phase: JobPhase.RUNNING, step: 2 });
    now = 300;
    th.flush();
    expect(sent.at(-1)).toEqual({ phase: JobPhase.RUNNING, step: 2 });
    now = 900;
    th.push({ phase: JobPhase.RUNNING, step: 8 });
    expect(sent.at(-1)?.step).toBe(8);
    th.stop();
  });

  test("the held-back update goes out by itself when the interval ends", async () => {
    const sent: number[] = [];
    const th = new ProgressThrottle((u) => sent.push(u.step ?? 0), 20);
    th.push({ phase: JobPhase.RUNNING, step: 1 });
    th.push({ phase: JobPhase.RUNNING, step: 2 });
    th.push({ phase: JobPhase.RUNNING, step: 3 });
    await new Promise<void>((resolve) => {
      const check = () => (sent.length === 2 ? resolve() : setTimeout(check, 5));
      check();
    });
    expect(sent).toEqual([1, 3]);
  });
});

describe("progress display", () => {
  const progress = (init: Parameters<typeof create<typeof JobProgressSchema>>[1]) => create(JobProgressSchema, init);

  test("bars show bytes for transfers and steps with the rate for sampling", () => {
    expect(barState(progress({ phase: JobPhase.DOWNLOADING, bytesDone: 1048576n, bytesTotal: 4194304n, rate: 2097152 }))).toEqual({
      value: 1048576,
      total: 4194304,
      detail: "1.0 MiB of 4.0 MiB, 2.0 MiB/s",
    });
    expect(barState(progress({ phase: JobPhase.RUNNING, step: 2, steps: 8, rate: 0.5 })).detail).toBe("step 2 of 8, 2.00 s/it");
    expect(barState(progress({ phase: JobPhase.RUNNING, step: 3, steps: 8, rate: 4 })).detail).toBe("step 3 of 8, 4.00 it/s");
    expect(barState(progress({ phase: JobPhase.LOADING, message: "starting" }))).toEqual({ value: 0, total: 1, detail: "starting" });
    // A total not known yet: the bar is as full as what has arrived.
    expect(barState(progress({ phase: JobPhase.DOWNLOADING, bytesDone: 2048n }))).toEqual({ value: 2048, total: 2048, detail: "2.0 KiB" });
  });

  test("BarView draws on a terminal and prints log lines above the bars", () => {
    let out = "";
    const tty = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          out += chunk.toString();
          cb();
        },
      }),
      { isTTY: true, columns: 120, rows: 40, cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true },
    ) as unknown as NodeJS.WriteStream;
    const view = new BarView(tty);
    view.started("job-123456789abc", "z-image-turbo", "sd-cpp");
    view.progress("job-123456789abc", progress({ phase: JobPhase.RUNNING, step: 4, steps: 8, rate: 2 }));
    view.log("a log line");
    view.finished("job-123456789abc", "succeeded", "1 output(s)");
    view.stop();
    expect(out).toContain("a log line");
    expect(out).toContain("job job-123456789abc succeeded: 1 output(s)");
  });

  test("LogView writes one line per phase change and at most one per interval within a phase", () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
    let now = 0;
    const view = new LogView(logger, 1000, () => now);
    view.started("j", "m", "sd-cpp");
    view.progress("j", progress({ phase: JobPhase.DOWNLOADING, bytesDone: 10n, bytesTotal: 100n }));
    now = 500;
    view.progress("j", progress({ phase: JobPhase.DOWNLOADING, bytesDone: 50n, bytesTotal: 100n }));
    view.progress("j", progress({ phase: JobPhase.RUNNING, step: 1, steps: 4 }));
    view.finished("j", "failed", "sd-cli exited with status 1");
    expect(lines.map((l) => [l.msg, l.phase ?? l.outcome ?? l.engine])).toEqual([
      ["job started", "sd-cpp"],
      ["job progress", "downloading"],
      ["job progress", "running"],
      ["job finished", "failed"],
    ]);
    expect(lines[1]).toMatchObject({ jobId: "j", bytesDone: 10, bytesTotal: 100 });
    expect(lines[3]).toMatchObject({ level: 40, detail: "sd-cli exited with status 1" });
  });

  test("terminal log lines are short and readable", () => {
    const line = humanLine(JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 12, 0, 1), service: "studio-worker", msg: "hello", jobId: "j" }));
    expect(line).toBe("12:00:01 WARN  hello jobId=j\n");
  });
});
