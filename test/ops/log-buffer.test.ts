import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { LineBuffer } from "../../server/log-buffer.js";

const LOG_TS = join(import.meta.dir, "../../server/log.ts");

/**
 * A child that logs through createLogger to stdout (a pipe, so the buffered JSON destination)
 * and then does `then`: its stdout is read line by line as it arrives.
 */
function child(then: string) {
  const script = `
    import { createLogger } from ${JSON.stringify(LOG_TS)};
    const logger = createLogger("info", { pretty: false });
    logger.info({ jobId: "j1" }, "job queued");
    ${then}
  `;
  return Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream) {
    text += new TextDecoder().decode(chunk);
    const end = text.indexOf("\n");
    if (end >= 0) return text.slice(0, end);
  }
  return text;
}

describe("stdout log buffering", () => {
  test("a line logged by an idle process reaches stdout while the process still runs", async () => {
    const proc = child(`setInterval(() => {}, 1000);`);
    try {
      const line = await firstLine(proc.stdout);
      expect(JSON.parse(line)).toMatchObject({ jobId: "j1", msg: "job queued" });
      expect(proc.exitCode).toBeNull();
    } finally {
      proc.kill();
      await proc.exited;
    }
  });

  for (const [how, then] of [
    ["process.exit", "process.exit(3);"],
    ["an uncaught exception", `setTimeout(() => { throw new Error("boom"); }, 1);`],
    ["SIGTERM handled by the process", `process.on("SIGTERM", () => process.exit(0)); process.kill(process.pid, "SIGTERM"); setInterval(() => {}, 1000);`],
  ] as const) {
    test(`the buffered lines are written when the process ends by ${how}`, async () => {
      const proc = child(then);
      const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(out.split("\n").filter(Boolean).map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ jobId: "j1", msg: "job queued" })]);
    });
  }
});

describe("LineBuffer", () => {
  function sink() {
    const writes: string[] = [];
    let syncFlushes = 0;
    return { writes, syncFlushes: () => syncFlushes, write: (s: string) => void writes.push(s), flushSync: () => void syncFlushes++ };
  }

  test("lines wait until minChars are waiting, then go to the sink in one write", () => {
    const s = sink();
    const buffer = new LineBuffer(s, { minChars: 20, maxDelayMs: 60_000 });
    try {
      buffer.write("0123456789\n");
      expect(s.writes).toEqual([]);
      buffer.write("abcdefghij\n");
      expect(s.writes).toEqual(["0123456789\nabcdefghij\n"]);
    } finally {
      buffer.close();
    }
  });

  test("flush hands on what waits in one write, and nothing when nothing waits; flushSync flushes the sink too", () => {
    const s = sink();
    const buffer = new LineBuffer(s, { minChars: 4096, maxDelayMs: 60_000 });
    try {
      buffer.flush();
      expect(s.writes).toEqual([]);
      buffer.write("a\n");
      buffer.write("b\n");
      buffer.flush();
      expect(s.writes).toEqual(["a\nb\n"]);
      buffer.write("c\n");
      buffer.flushSync();
      // A sink without a file descriptor gets the last batch through write, after its own flushSync.
      expect(s.writes).toEqual(["a\nb\n", "c\n"]);
      expect(s.syncFlushes()).toBe(1);
    } finally {
      buffer.close();
    }
  });

  test("a sink that throws drops the batch instead of throwing into the code that logged", () => {
    const buffer = new LineBuffer({ write: () => { throw new Error("SonicBoom destroyed"); } }, { minChars: 1 });
    try {
      expect(() => buffer.write("a\n")).not.toThrow();
    } finally {
      buffer.close();
    }
  });
});
