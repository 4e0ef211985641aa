import { expect, test } from "bun:test";
import { ProgressThrottle } from "../../server/dispatch/progress-throttle.js";

test("the first report is written at once, a burst keeps only its last report, written when the window ends", async () => {
  const throttle = new ProgressThrottle({ intervalMs: 30 });
  const written: number[] = [];
  let lastWritten!: () => void;
  const flushed = new Promise<void>((r) => (lastWritten = r));
  const write = (n: number) => async () => {
    written.push(n);
    if (n === 4) lastWritten();
  };
  await throttle.submit("job", write(1));
  expect(written).toEqual([1]);
  for (const n of [2, 3, 4]) await throttle.submit("job", write(n));
  expect(written).toEqual([1]);
  await flushed;
  expect(written).toEqual([1, 4]);
  await throttle.submit("other", write(9));
  expect(written).toEqual([1, 4, 9]);
  throttle.clear();
});

test("dropping a job discards its pending report", async () => {
  const throttle = new ProgressThrottle({ intervalMs: 10_000 });
  const written: string[] = [];
  await throttle.submit("job", async () => void written.push("first"));
  await throttle.submit("job", async () => void written.push("pending"));
  throttle.drop("job");
  await throttle.submit("job", async () => void written.push("after drop"));
  expect(written).toEqual(["first", "after drop"]);
  throttle.clear();
});

test("flush writes a pending report at once (the lease is about to end), and does nothing when none is pending", async () => {
  const throttle = new ProgressThrottle({ intervalMs: 60_000 });
  const written: string[] = [];
  await throttle.submit("job", async () => void written.push("first"));
  await throttle.submit("job", async () => void written.push("held"));
  await throttle.submit("job", async () => void written.push("last"));
  expect(written).toEqual(["first"]);
  await throttle.flush("job");
  expect(written).toEqual(["first", "last"]);
  await throttle.flush("job");
  await throttle.flush("never-reported");
  expect(written).toEqual(["first", "last"]);
  throttle.clear();
});

test("a change of phase is written at once, whatever the window: a short phase is never lost behind the next", async () => {
  const throttle = new ProgressThrottle({ intervalMs: 10_000 });
  const written: string[] = [];
  await throttle.submit("job", async () => void written.push("downloading 1"), "downloading");
  await throttle.submit("job", async () => void written.push("downloading 2"), "downloading");
  await throttle.submit("job", async () => void written.push("running 1"), "running");
  await throttle.submit("job", async () => void written.push("running 2"), "running");
  // The job ends (its lease goes): what is still pending within a phase may go with it, a phase never.
  throttle.drop("job");
  expect(written).toEqual(["downloading 1", "running 1"]);
  throttle.clear();
});
