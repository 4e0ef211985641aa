/** The error a job keeps when the reaper takes back its lease and queues it again. */
export function lostAndQueuedAgain(worker: string | null): string {
  return `worker ${JSON.stringify(worker ?? "unknown")} was lost (lease expired); queued again`;
}

/** The error a job fails with when the reaper takes back its lease after its last attempt. */
export function lostForGood(worker: string | null, maxAttempts: number): string {
  return (
    `worker ${JSON.stringify(worker ?? "unknown")} was lost: its lease expired without a heartbeat, ` +
    `and the job has used all ${maxAttempts} attempts`
  );
}
