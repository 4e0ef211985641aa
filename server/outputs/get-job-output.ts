import { create } from "@bufbuild/protobuf";
import {
  GetJobOutputResponseSchema,
  type GetJobOutputRequest,
  type GetJobOutputResponse,
} from "../../gen/studio/v1/job_service_pb.js";
import type { StudioDb } from "../db/open.js";
import { findJobOutput } from "./job-output-reader.js";
import type { OutputStore } from "./output-store.js";

/**
 * JobService.GetJobOutput: the output's metadata in the first message, then its
 * bytes in chunks of at most 1 MiB read from the content-addressed store.
 */
export async function* getJobOutput(
  db: StudioDb,
  outputs: OutputStore,
  req: GetJobOutputRequest,
  signal: AbortSignal,
): AsyncGenerator<GetJobOutputResponse> {
  const output = findJobOutput(db, outputs, req.jobId, req.index);
  yield create(GetJobOutputResponseSchema, { output });
  const stream = outputs.openRead(output.sha256);
  try {
    for await (const chunk of stream) {
      if (signal.aborted) return;
      yield create(GetJobOutputResponseSchema, { chunk: chunk as Buffer });
    }
  } finally {
    stream.destroy();
  }
}
