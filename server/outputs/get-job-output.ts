import { create } from "@bufbuild/protobuf";
import {
  GetJobOutputResponseSchema,
  type GetJobOutputRequest,
  type GetJobOutputResponse,
} from "../../gen/studio/v1/job_service_pb.js";
import type { JobRow } from "../jobs/job-row.js";
import { findJobOutput } from "./job-output-reader.js";
import type { OutputStore } from "./output-store.js";

/**
 * JobService.GetJobOutput: the output's metadata in the first message, then its
 * bytes in chunks of at most 1 MiB streamed from the content-addressed store.
 */
export async function* getJobOutput(
  getJob: (id: string) => Promise<JobRow | undefined>,
  outputs: OutputStore,
  req: GetJobOutputRequest,
  signal: AbortSignal,
): AsyncGenerator<GetJobOutputResponse> {
  const output = await findJobOutput(getJob, outputs, req.jobId, req.index);
  yield create(GetJobOutputResponseSchema, { output });
  // Leaving the loop early (abort, client gone) returns the iterator, which closes the file or the query.
  for await (const chunk of outputs.openRead(output.sha256)) {
    if (signal.aborted) return;
    yield create(GetJobOutputResponseSchema, { chunk });
  }
}
