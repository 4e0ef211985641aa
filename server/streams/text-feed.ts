import type { StreamedText, TextDelta } from "../../gen/studio/v1/job_pb.js";

/**
 * Where text jobs' streamed output can be followed: the pieces workers send (JobTextDelta),
 * from this replica's sessions and, with several replicas, from the others'. WatchJobs, the
 * OpenAI API and GetJob read it; TextStreams implements it.
 */
export interface TextFeed {
  /** Each piece of one job's text (or of every job's, jobId undefined) from now on; returns the unsubscribe. */
  subscribe(jobId: string | undefined, listener: (delta: TextDelta) => void): () => void;
  /** The job's text so far as this replica heard it from its first piece, or undefined when it did not. */
  current(jobId: string): StreamedText | undefined;
  /** The job's text so far: this replica's, else as last kept with the job (the database). */
  read(jobId: string): Promise<StreamedText | undefined>;
}
