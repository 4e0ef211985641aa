import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { JobPhase, JobProgressSchema, JobSchema, JobStatus, WaitReason } from "../../gen/studio/v1/job_pb.js";
import { jobLine, progressBar, WatchView } from "../../cli/watch-view.js";
import { renderTable } from "../../cli/output.js";
import { codeName, describeRpcError, EXIT } from "../../cli/exit-codes.js";
import { Code, ConnectError } from "@connectrpc/connect";

const job = (status: JobStatus, progress?: MessageInitShape<typeof JobProgressSchema>) =>
  create(JobSchema, { id: "j1", model: "m", status, progress, workerName: "w" });

describe("watch view", () => {
  test("bars show bytes while downloading and steps while running", () => {
    expect(progressBar(1, 4)).toBe(`[${"#".repeat(6)}${"-".repeat(18)}]  25%`);
    expect(progressBar(5, 4)).toContain("100%");
    expect(jobLine(job(JobStatus.RUNNING, { phase: JobPhase.DOWNLOADING, bytesDone: 500n, bytesTotal: 1000n }))).toContain(" 50% 500 B of 1000 B");
    expect(jobLine(job(JobStatus.RUNNING, { phase: JobPhase.RUNNING, step: 3, steps: 4 }))).toContain("step 3 of 4");
    // No Content-Length yet: the bar measures against the source's approxBytes, as the web page does.
    const approx = create(JobSchema, {
      id: "j3",
      model: "m",
      status: JobStatus.RUNNING,
      progress: { phase: JobPhase.DOWNLOADING, bytesDone: 1024n },
      modelSource: { files: [{ url: "http://h/a", filename: "a", approxBytes: 4096n }] },
    });
    expect(jobLine(approx)).toContain(" 25% 1.0 KiB of 4.0 KiB");
    expect(jobLine(create(JobSchema, { id: "j2", model: "m", status: JobStatus.FAILED, error: "boom" }))).toContain("boom");
    const waiting = create(JobSchema, {
      id: "j3",
      model: "m",
      status: JobStatus.QUEUED,
      waiting: { reason: WaitReason.NO_CAPABLE_WORKER, message: "no connected worker runs sd-cpp (no worker is connected)" },
    });
    expect(jobLine(waiting)).toBe("j3  m  queued    waiting: no connected worker runs sd-cpp (no worker is connected)");
  });

  test("on a terminal lines are redrawn in place; otherwise one JSON document per change", () => {
    const tty: string[] = [];
    const live = new WatchView({ out: (s) => tty.push(s), err: () => {}, isTTY: true }, { json: false });
    live.update(job(JobStatus.QUEUED));
    live.update(job(JobStatus.RUNNING, { phase: JobPhase.RUNNING, step: 1, steps: 2 }));
    expect(tty[0]!.startsWith("\x1b[2K")).toBe(true);
    expect(tty[1]!.startsWith("\x1b[1F")).toBe(true);
    const pipe: string[] = [];
    const lines = new WatchView({ out: (s) => pipe.push(s), err: () => {}, isTTY: false }, { json: false });
    lines.update(job(JobStatus.QUEUED));
    expect(JSON.parse(pipe[0]!)).toMatchObject({ id: "j1", status: "JOB_STATUS_QUEUED" });
  });
});

describe("output and errors", () => {
  test("tables align columns", () => {
    expect(renderTable(["A", "LONGER"], [["xyz", "1"], ["q", "22"]])).toBe("A    LONGER\nxyz  1\nq    22\n");
    expect(renderTable(["A"], [])).toBe("(none)\n");
  });

  test("Connect codes map to exit codes and hints", () => {
    expect(codeName(Code.FailedPrecondition)).toBe("failed_precondition");
    expect(describeRpcError(new ConnectError("x", Code.NotFound), "s").exitCode).toBe(EXIT.notFound);
    expect(describeRpcError(new ConnectError("x", Code.PermissionDenied), "s").exitCode).toBe(EXIT.denied);
    expect(describeRpcError(new ConnectError("x", Code.Unavailable), "s").exitCode).toBe(EXIT.unreachable);
    expect(describeRpcError(new ConnectError("x", Code.InvalidArgument), "s")).toEqual({ exitCode: EXIT.failed, message: "invalid_argument: x" });
  });
});
