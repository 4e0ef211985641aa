import { create } from "@bufbuild/protobuf";
import { JobOutputSchema } from "../../gen/studio/v1/job_pb.js";
import type { OutputChunk } from "../../gen/studio/v1/worker_service_pb.js";
import type { Caller } from "../auth/caller.js";
import type { OutputStore, OutputUpload } from "../outputs/output-store.js";
import type { OutputStaging, StagedOutput } from "../outputs/output-staging.js";
import { OutputError } from "../outputs/output-error.js";
import { checkMimeType, checkOutputMimeType } from "../outputs/mime-type.js";
import { imageSize } from "../outputs/image-size.js";
import type { QueueActions } from "./queue-actions.js";

/** Most outputs one session may have half-received at once (each holds an open temp file). */
export const MAX_OPEN_UPLOADS = 64;

interface Active {
  upload: OutputUpload;
  mimeType: string;
  /** Read from the first chunk's bytes. */
  size: { width: number; height: number } | undefined;
  jobId: string;
  leaseId: string;
  index: number;
}

/**
 * The outputs a streaming worker is sending: chunks of each (job, index) arrive
 * in order and go straight to a temp file (or memory); a finished, verified output
 * is staged under its lease in the shared OutputStaging, where it waits for the
 * worker's complete (and survives a reconnect that keeps the lease). A refused
 * output is dropped at once (temp file removed) and its later chunks ignored.
 */
export class SessionUploads {
  readonly #active = new Map<string, Active>();
  readonly #refused = new Set<string>();

  constructor(
    readonly outputs: OutputStore,
    readonly actions: QueueActions,
    readonly staging: OutputStaging,
  ) {}

  /** Takes one chunk; throws OutputError/DispatchError for a refused output (the session sends the Receipt). */
  async receive(chunk: OutputChunk, caller: Caller): Promise<void> {
    const key = `${chunk.leaseId}\u0000${chunk.index}`;
    const offset = Number(chunk.offset);
    if (offset === 0) {
      this.#abort(key);
      this.#refused.delete(key);
      try {
        await this.#begin(key, chunk, caller);
      } catch (err) {
        this.#refused.add(key);
        throw err;
      }
    } else if (this.#refused.has(key)) {
      return;
    }
    const active = this.#active.get(key);
    if (!active)
      throw new OutputError("failed_precondition", `output ${chunk.index} of job ${chunk.jobId}: no upload in progress (first chunk must have offset 0)`);
    try {
      if (chunk.sha256 !== active.upload.sha256 || Number(chunk.totalSize) !== active.upload.size || chunk.mimeType !== active.mimeType)
        throw new OutputError("invalid_argument", `output ${chunk.index}: total_size, sha256 and mime_type must not change between chunks`);
      active.upload.write(offset, chunk.data);
      if (!active.upload.complete) return;
      const verified = active.upload.finish();
      this.#active.delete(key);
      this.staging.add(active.leaseId, {
        meta: create(JobOutputSchema, {
          index: active.index,
          mimeType: active.mimeType,
          sizeBytes: BigInt(verified.size),
          sha256: verified.sha256,
          ...active.size,
        }),
        verified,
      });
    } catch (err) {
      active.upload.abort();
      this.#active.delete(key);
      this.#refused.add(key);
      throw err;
    }
    // Staged first, checked second: a lease that ended before the check fails it here, one
    // that ends after it is dropped by the lease's end; either way nothing stays staged.
    try {
      await this.actions.current({ jobId: chunk.jobId, leaseId: chunk.leaseId }, caller);
    } catch (err) {
      this.staging.drop(chunk.leaseId);
      throw err;
    }
  }

  async #begin(key: string, chunk: OutputChunk, caller: Caller) {
    const row = await this.actions.current({ jobId: chunk.jobId, leaseId: chunk.leaseId }, caller);
    const expected = this.actions.expectedOutputs(chunk.leaseId, row);
    if (chunk.index >= expected)
      throw new OutputError("invalid_argument", `output index ${chunk.index} is out of range: the task asks for ${expected}`);
    checkMimeType(chunk.mimeType);
    checkOutputMimeType(chunk.mimeType, this.actions.outputMimeTypes(chunk.leaseId, row), chunk.index);
    if (this.#active.size >= MAX_OPEN_UPLOADS)
      throw new OutputError("resource_exhausted", `at most ${MAX_OPEN_UPLOADS} outputs may be in flight per session`);
    const size = chunk.totalSize > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(chunk.totalSize);
    const upload = this.outputs.begin(size, chunk.sha256);
    const dimensions = imageSize(chunk.mimeType, chunk.data);
    this.#active.set(key, { upload, mimeType: chunk.mimeType, size: dimensions, jobId: chunk.jobId, leaseId: chunk.leaseId, index: chunk.index });
  }

  /** The verified outputs staged under a lease (complete commits them); in-flight uploads of it are dropped. */
  take(leaseId: string): ReadonlyMap<number, StagedOutput> {
    this.drop(leaseId, false);
    return this.staging.of(leaseId);
  }

  /** Forgets a lease's uploads (its job ended); its staged outputs too unless keepStaged. */
  drop(leaseId: string, forgetStaged = true): void {
    for (const [key, a] of this.#active) if (a.leaseId === leaseId) this.#abort(key);
    for (const key of this.#refused) if (key.startsWith(`${leaseId}\u0000`)) this.#refused.delete(key);
    if (forgetStaged) this.staging.drop(leaseId);
  }

  /**
   * Drops the uploads in flight (the session ended). Staged outputs stay with their
   * lease: a reconnect that keeps it may still complete; its end (expiry) drops them.
   */
  clear(): void {
    for (const key of [...this.#active.keys()]) this.#abort(key);
    this.#refused.clear();
  }

  #abort(key: string) {
    this.#active.get(key)?.upload.abort();
    this.#active.delete(key);
  }
}
