import { describe, expect, test } from "bun:test";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { JobEvents, type JobChange } from "../../server/events/job-events.js";
import { startTestStudio } from "../helpers/test-studio.js";

const change = (jobId: string): JobChange => ({ jobId, status: "QUEUED", model: "synthetic" });

describe("job event listeners are isolated", () => {
  test("a throwing listener is reported; the listeners after it still run; publish does not throw", () => {
    const reported: Array<[string, string]> = [];
    const events = new JobEvents((err, c) => reported.push([(err as Error).message, c.jobId]));
    const seen: string[] = [];
    events.subscribe((c) => seen.push(`first ${c.jobId}`));
    events.subscribe(() => {
      throw new Error("listener bug");
    });
    events.subscribe((c) => seen.push(`last ${c.jobId}`));
    expect(() => events.publish(change("a"))).not.toThrow();
    expect(seen).toEqual(["first a", "last a"]);
    expect(reported).toEqual([["listener bug", "a"]]);
  });

  test("unsubscribe removes exactly that subscription", () => {
    const events = new JobEvents();
    const seen: string[] = [];
    const listener = (c: JobChange) => seen.push(c.jobId);
    const off1 = events.subscribe(listener);
    const off2 = events.subscribe(listener);
    expect(events.listenerCount).toBe(2);
    off1();
    events.publish(change("b"));
    expect(seen).toEqual(["b"]);
    off2();
    expect(events.listenerCount).toBe(0);
  });

  test("CreateJob callers whose jobs committed are answered even when a listener throws (group commit)", async () => {
    const t = await startTestStudio();
    try {
      const jobs: Client<typeof JobService> = t.client(JobService);
      const off = t.studio.ctx.events.subscribe(() => {
        throw new Error("listener bug");
      });
      const task = (prompt: string) => ({ kind: { case: "image", value: { prompt } } }) as Task;
      // Several creates in one turn of the event loop: one transaction, published after its commit.
      const created = await Promise.all(["a", "b", "c"].map((p) => jobs.createJob({ model: "synthetic", task: task(p) })));
      off();
      for (const { job } of created) expect((await jobs.getJob({ jobId: job!.id })).job!.status).toBe(JobStatus.QUEUED);
    } finally {
      await t.stop();
    }
  });
});
