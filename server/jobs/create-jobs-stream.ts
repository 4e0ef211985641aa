import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  CreateJobsAnswerSchema,
  CreateJobsResponseSchema,
  type CreateJobRequest,
  type CreateJobResponse,
  type CreateJobsAnswer,
  type CreateJobsRequest,
  type CreateJobsResponse,
} from "../../gen/studio/v1/job_service_pb.js";
import { JobError } from "./job-errors.js";
import { jobConnectError } from "./job-rpc-errors.js";

/**
 * Jobs a stream may have started and not yet answered; also the most one request may carry. Past
 * it the stream is not read further until answers leave, so a client that sends faster than it
 * reads is held back by HTTP/2 flow control, not by the studio's memory.
 */
export const MAX_CREATES_IN_FLIGHT = 256;

/** One job's answer as it settles, and whether it has (so that ready answers can leave together). */
interface Pending {
  answer: Promise<CreateJobsAnswer>;
  settled: boolean;
}

/**
 * JobService.CreateJobs: every job is created as CreateJob creates it (`createJob`, which throws
 * JobError for a refusal) as soon as it is read, so the creates of a busy stream share commits,
 * and the answers leave in the order the jobs came, those that are ready together in one
 * response. A refusal is answered with its Connect code name and message and the stream goes on;
 * any other error (the database is gone) ends the stream with it.
 */
export async function* createJobsStream(
  requests: AsyncIterable<CreateJobsRequest>,
  createJob: (req: CreateJobRequest) => Promise<CreateJobResponse>,
): AsyncGenerator<CreateJobsResponse> {
  const pending: Pending[] = [];
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let ended = false;
  let failed: { err: unknown } | undefined;
  const answerOf = async (req: CreateJobRequest): Promise<CreateJobsAnswer> => {
    try {
      return create(CreateJobsAnswerSchema, { result: await createJob(req) });
    } catch (err) {
      if (!(err instanceof JobError)) throw err;
      const refusal = jobConnectError(err) as ConnectError;
      return create(CreateJobsAnswerSchema, { errorCode: codeToString(refusal.code), errorMessage: refusal.rawMessage });
    }
  };
  const start = (req: CreateJobRequest) => {
    const p: Pending = { answer: answerOf(req), settled: false };
    p.answer.then(
      () => (p.settled = true),
      () => (p.settled = true),
    );
    pending.push(p);
  };
  const reader = (async () => {
    for await (const req of requests) {
      if (req.jobs.length > MAX_CREATES_IN_FLIGHT)
        throw new ConnectError(`jobs: a CreateJobs request may carry at most ${MAX_CREATES_IN_FLIGHT} jobs (got ${req.jobs.length})`, Code.InvalidArgument);
      while (pending.length >= MAX_CREATES_IN_FLIGHT && !failed) await new Promise<void>((r) => (wakeReader = r));
      if (failed) return;
      for (const job of req.jobs) start(job);
      wakeWriter?.();
    }
  })().then(
    () => {
      ended = true;
      wakeWriter?.();
    },
    (err: unknown) => {
      failed ??= { err };
      ended = true;
      wakeWriter?.();
    },
  );
  try {
    for (;;) {
      const head = pending[0];
      if (head) {
        const answers = [await head.answer];
        pending.shift();
        while (pending[0]?.settled) answers.push(await pending.shift()!.answer);
        wakeReader?.();
        yield create(CreateJobsResponseSchema, { answers });
        continue;
      }
      if (failed) throw failed.err;
      if (ended) return;
      await new Promise<void>((r) => (wakeWriter = r));
      wakeWriter = undefined;
    }
  } catch (err) {
    failed ??= { err };
    wakeReader?.();
    throw err;
  } finally {
    await reader.catch(() => {});
  }
}
