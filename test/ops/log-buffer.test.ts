import { describe, expect, test } from "bun:test";
import { join } from "node:path";

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
