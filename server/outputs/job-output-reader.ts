import type { JobOutput } from "../../gen/studio/v1/job_pb.js";
import { outputsFromJson, type JobRow } from "../jobs/job-row.js";
import { OutputError } from "./output-error.js";
import type { OutputStore } from "./output-store.js";

/** Bounds of an output index in a request (a task asks for at most a few). */
const MAX_INDEX = 1_000_000;

/**
 * Finds a committed output of a job: its metadata from the job row and its bytes
 * in the content-addressed store. NOT_FOUND names what is missing: the job, the
 * index, or (never expected) the stored bytes.
 */
export async function findJobOutput(
  getJob: (id: string) => Promise<JobRow | undefined>,
  outputs: OutputStore,
  jobId: string,
  index: number,
): Promise<JobOutput> {
  if (jobId === "" || jobId.length > 200) throw new OutputError("invalid_argument", "job_id must be 1 to 200 characters");
  if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX)
    throw new OutputError("invalid_argument", `index must be a non-negative integer (got ${index})`);
  const row = await getJob(jobId);
  if (!row) throw new OutputError("not_found", `job ${JSON.stringify(jobId)} not found`);
  const output = outputsFromJson(row.outputs).find((o) => o.index === index);
  if (!output) throw new OutputError("not_found", `job ${JSON.stringify(jobId)} (${row.status}) has no output ${index}`);
  if (!(await outputs.has(output.sha256)))
    throw new OutputError("not_found", `output ${index} of job ${JSON.stringify(jobId)} is missing from the output store`);
  return output;
}
