import { create } from "@bufbuild/protobuf";
import { rm } from "node:fs/promises";
import type { Logger } from "pino";
import { engineName } from "../../contract/names.js";
import { JobPhase, JobProgressSchema, type Offer } from "../../gen/studio/v1/job_pb.js";
import { createHash } from "node:crypto";
import {
  JobCompleteSchema,
  JobDeclineSchema,
  JobFailSchema,
  JobProgressReportSchema,
  OutputDataSchema,
  type Receipt,
} from "../../gen/studio/v1/worker_service_pb.js";
import { DownloadError } from "../download/errors.js";
import { EngineError } from "../engines/engine-error.js";
import { JobDirRecord } from "../recovery/owner-record.js";
import type { Engine, EngineFile, EngineOutput, JobGpu } from "../engines/types.js";
import type { LiveSession, SessionMessage } from "../session/session-client.js";
import { SessionClosedError } from "../session/outbox.js";
import { ReceiptLedger, ReceiptTimeout, type ReceiptKind } from "./receipt-ledger.js";
import { JobStop, jobStopOf } from "./job-stop.js";
import { outputChunks } from "./output-chunks.js";
import { TextRelay } from "./text-relay.js";
import { ProgressThrottle } from "../../contract/progress-throttle.js";
import { linkWorkDir } from "../download/work-dir.js";
import type { Downloads, EngineRouter, HeldFile, JobOutcome, JobView, SessionSource } from "./ports.js";

/** One progress report before it is stamped for the wire. */
interface ProgressUpdate {
  phase: JobPhase;
  bytesDone?: number;
  bytesTotal?: number;
  step?: number;
  steps?: number;
  rate?: number;
  message?: string;
}

/** Everything one job needs, passed in by the runtime. */
export interface JobRunDeps {
  engines: EngineRouter;
  downloads: Downloads;
  sessions: SessionSource;
  view: JobView;
  logger: Logger;
  /** Parent of the per-job work directories. */
  workRoot: string;
  timeoutMs: number;
  /** Fires when the worker stops for good: deliveries give up. */
  stopSignal: AbortSignal;
  /** Called after downloads: new digests may be in the cache. */
  cacheChanged(): void;
  progressIntervalMs?: number;
  receiptTimeoutMs?: number;
  /** The GPU of the job's slot; unset on a CPU slot. */
  gpu?: JobGpu;
  /** The worker runs with --gpus none. */
  cpuOnly?: boolean;
}

/**
 * One offer on this worker, from accept to complete or fail: route to the engine the source
 * names, download and link the files, run the engine, upload the outputs in chunks. Final
 * messages (outputs and complete, fail, decline) survive reconnects: they are sent again on the
 * next session unless welcome says the lease was lost.
 */
export class JobRun {
  readonly jobId: string;
  readonly leaseId: string;
  readonly abort = new AbortController();
  private readonly receipts = new ReceiptLedger();
  private readonly throttle: ProgressThrottle;
  private uploading = false;
  private done = false;
  private finalSent = false;
  private refusedOutput: Receipt | undefined;
  /** The engine held the files already: the cache was not touched, so there is nothing to tell the studio about it. */
  ranWarm = false;

  constructor(
    readonly offer: Offer,
    private readonly deps: JobRunDeps,
  ) {
    this.jobId = offer.jobId;
    this.leaseId = offer.leaseId;
    this.throttle = new ProgressThrottle({ intervalMs: deps.progressIntervalMs ?? 250 });
  }

  /** True once the studio has answered the job's last message, or the lease is gone: it holds no lease for us. */
  get settled(): boolean {
    return this.done;
  }

  /**
   * True once the job's last message (complete, fail or decline) went out: the studio counts the
   * slot free when it has processed it and may offer the next job before its receipt arrives.
   */
  get slotFreed(): boolean {
    return this.finalSent || this.done;
  }

  /** Stops the job for a reason; the engine kills its process group, downloads stop. */
  stop(stop: JobStop): void {
    if (!this.abort.signal.aborted) this.abort.abort(stop);
    if (!stop.reportable) this.receipts.rejectAll(stop);
  }

  /** A receipt for this job, matched to what we sent on that session in order. */
  receipt(r: Receipt, session: LiveSession): void {
    if (this.receipts.match(r, session.id)) return;
    if (!r.ok && this.uploading) this.refusedOutput ??= r;
    else if (!r.ok) this.stop(new JobStop("refused", `the studio refused lease ${this.leaseId}: ${r.code} ${r.message}`));
  }

  /** The session a message or receipt was expected on has ended. */
  sessionClosed(sessionId: number): void {
    this.receipts.sessionClosed(sessionId);
  }

  /** Runs the job to its end; never throws. */
  async run(): Promise<{ outcome: JobOutcome; message?: string }> {
    const { offer, deps } = this;
    let engine: Engine;
    try {
      engine = deps.engines.route(offer.model, offer.modelSource);
    } catch (err) {
      if (err instanceof EngineError && err.kind === "unavailable") {
        await this.finish("decline", { case: "decline", value: create(JobDeclineSchema, { ...this.ids(), reason: err.message }) });
        return this.end("declined", err.message);
      }
      const message = err instanceof Error ? err.message : String(err);
      await this.finish("fail", this.failMessage(message, false));
      return this.end("failed", message);
    }
    // No JobAccept: the offer is the lease, and the studio marks the job RUNNING on its first progress report.
    deps.view.started(this.jobId, offer.model, engineName(engine.kind) ?? String(engine.kind));

    const held: HeldFile[] = [];
    let touched: Promise<void> | undefined;
    let workDir: string | undefined;
    try {
      const signal = this.abort.signal;
      const files = offer.modelSource!.files;
      // A warm engine already holds the files (a llama-server an earlier job started): there is
      // nothing to check, place or link, and no process to record, so the job goes straight to it.
      const warm = files.length > 0 ? engine.warmFiles?.(offer.modelSource!, deps.gpu?.index) : undefined;
      let linked: { files: EngineFile[]; loraDir?: string };
      let jobDir: JobDirRecord | undefined;
      if (warm) {
        linked = { files: warm };
        this.ranWarm = true;
        // Off the first token's path: awaited when the job ends.
        touched = deps.downloads
          .touchCached(files)
          .catch((err) => deps.logger.warn({ jobId: this.jobId, err: (err as Error).message }, "cannot mark the warm engine's model files as used in the cache"));
      } else {
        if (files.length > 0) {
          this.progress({ phase: JobPhase.DOWNLOADING, message: `downloading ${files.length} file(s)` });
          const cached = await deps.downloads.ensureAll(files, {
            signal,
            onProgress: (p) =>
              this.progress({
                phase: JobPhase.DOWNLOADING,
                bytesDone: p.bytesDone,
                bytesTotal: p.bytesTotal,
                rate: p.rate,
                message: p.verified === false ? "downloading (unverified: no sha256)" : "downloading",
              }),
          });
          held.push(...cached);
          deps.cacheChanged();
        }
        signal.throwIfAborted();
        jobDir = await JobDirRecord.create(deps.workRoot);
        workDir = jobDir.dir;
        linked = await linkWorkDir(
          workDir,
          held.map((cached, i) => ({ file: files[i]!, cached })),
        );
      }
      this.progress({ phase: JobPhase.LOADING, message: "starting the engine" });
      // Pieces are posted as they come, so they are queued before the outputs and the complete.
      const text = offer.task?.kind.case === "text" ? new TextRelay({ ...this.ids(), attempt: offer.attempt }, deps.sessions) : undefined;
      const outputs = await engine.run({
        jobId: this.jobId,
        model: offer.model,
        task: offer.task!,
        source: offer.modelSource!,
        files: linked.files,
        loraDir: linked.loraDir,
        // A warm run has no dir of its own; the engines that run warm (llama-server) write none.
        workDir: workDir ?? deps.workRoot,
        signal,
        timeoutMs: deps.timeoutMs,
        gpu: deps.gpu,
        cpuOnly: deps.cpuOnly,
        onSpawn: jobDir && ((pgid, binary) => this.recordGroup(jobDir, pgid, binary)),
        onText: text && ((piece) => !signal.aborted && text.push(piece)),
        onProgress: (p) =>
          this.progress({
            phase: p.phase === "loading" ? JobPhase.LOADING : JobPhase.RUNNING,
            step: p.step,
            steps: p.steps,
            rate: p.rate,
            message: p.message,
          }),
        // The engine is done with the GPU: the studio may offer the slot's next job before this one's
        // receipt ends the run, and that job must not find this one's need still counted as loading.
      }).finally(() => deps.gpu?.pool.jobEnded(this.jobId));
      signal.throwIfAborted();
      await this.throttle.flush(this.jobId);
      return await this.upload(outputs);
    } catch (err) {
      this.throttle.drop(this.jobId);
      const stop = jobStopOf(this.abort.signal);
      if (stop && !stop.reportable) return this.end(stop.kind, stop.message);
      if (!stop && err instanceof EngineError && err.kind === "no-room") {
        // Nothing was started: the offer goes back without counting an attempt (another GPU, or this one later).
        await this.finish("decline", { case: "decline", value: create(JobDeclineSchema, { ...this.ids(), reason: err.message }) });
        return this.end("declined", err.message);
      }
      const message = stop?.message ?? (err instanceof Error ? err.message : String(err));
      const retryable = stop ? true : retryableOf(err);
      if (!isWorkerError(err) && !stop)
        deps.logger.error({ jobId: this.jobId, err }, "job failed unexpectedly");
      await this.finish("fail", this.failMessage(message, retryable));
      return this.end("failed", message);
    } finally {
      this.throttle.drop(this.jobId);
      await touched;
      for (const f of held)
        await Promise.resolve(f.release()).catch((err) =>
          deps.logger.warn({ jobId: this.jobId, err: (err as Error).message }, "cannot release a cached model file after the job"),
        );
      // What is left stays until this worker's next start-up (crash recovery removes a dead owner's dirs).
      if (workDir)
        await rm(workDir, { recursive: true, force: true }).catch((err) =>
          deps.logger.warn({ jobId: this.jobId, path: workDir, err: (err as Error).message }, "cannot remove the job dir"),
        );
    }
  }

  /** Notes an engine process group in the job dir's owner record; a failed write only loses crash recovery for it. */
  private recordGroup(jobDir: JobDirRecord, pgid: number, binary: string): void {
    try {
      jobDir.addGroup(pgid, binary);
    } catch (err) {
      this.deps.logger.warn({ jobId: this.jobId, pgid, err: (err as Error).message }, "cannot record the engine's process group for crash recovery");
    }
  }

  private async upload(outputs: EngineOutput[]): Promise<{ outcome: JobOutcome; message?: string }> {
    const total = outputs.reduce((n, o) => n + o.data.byteLength, 0);
    this.uploading = true;
    await this.throttle.flush(this.jobId);
    const receipt = await this.deliver("complete", async (session) => {
      const inline = session.welcome.maxInlineOutputBytes;
      if (inline > 0 && total <= inline) {
        // Small enough to ride in the complete itself: one message instead of chunks and a complete.
        const data = outputs.map((o, index) =>
          create(OutputDataSchema, { index, mimeType: o.mimeType, data: o.data, sha256: createHash("sha256").update(o.data).digest("hex") }),
        );
        return { case: "complete", value: create(JobCompleteSchema, { ...this.ids(), outputCount: outputs.length, outputs: data }) };
      }
      let done = 0;
      for (const [index, output] of outputs.entries()) {
        for (const chunk of outputChunks(this.ids(), index, output.mimeType, output.data)) {
          const stop = jobStopOf(this.abort.signal);
          if (stop && !stop.reportable) throw stop;
          if (this.refusedOutput) throw new OutputRefusedError(this.refusedOutput);
          await session.send({ case: "outputChunk", value: chunk });
          done += chunk.data.byteLength;
          this.progress({ phase: JobPhase.UPLOADING, bytesDone: done, bytesTotal: total, message: "uploading" });
        }
      }
      return { case: "complete", value: create(JobCompleteSchema, { ...this.ids(), outputCount: outputs.length }) };
    });
    this.throttle.drop(this.jobId);
    if (receipt === undefined) return this.end(jobStopOf(this.abort.signal)?.kind ?? "abandoned");
    if (!receipt.ok) {
      const message = `the studio did not take the outputs: ${receipt.code} ${receipt.message}`;
      this.deps.logger.warn({ jobId: this.jobId, leaseId: this.leaseId, code: receipt.code }, message);
      // A stale lease means the job is someone else's now; any other refusal (a bad or oversized
      // output) would only repeat on a retry, so the job fails for good while the lease is ours.
      if (receipt.code === "failed_precondition" || receipt.code === "not_found") return this.end("refused", message);
      await this.finish("fail", this.failMessage(message, false));
      return this.end("failed", message);
    }
    return this.end("succeeded", `${outputs.length} output(s), ${total} bytes`);
  }

  /** Sends a final message (and, for complete, the outputs before it) until a receipt answers it. */
  private async finish(kind: ReceiptKind, message: SessionMessage): Promise<void> {
    const receipt = await this.deliver(kind, async () => message);
    if (receipt && !receipt.ok)
      this.deps.logger.warn({ jobId: this.jobId, kind, code: receipt.code, message: receipt.message }, `the studio refused ${kind}`);
  }

  private async deliver(kind: ReceiptKind, send: (s: LiveSession) => Promise<SessionMessage>): Promise<Receipt | undefined> {
    try {
      return await this.deliverOnce(kind, send);
    } finally {
      this.done = true;
    }
  }

  private async deliverOnce(kind: ReceiptKind, send: (s: LiveSession) => Promise<SessionMessage>): Promise<Receipt | undefined> {
    const { deps } = this;
    for (let attempt = 0; ; attempt++) {
      const lost = jobStopOf(this.abort.signal);
      if ((lost && !lost.reportable) || deps.stopSignal.aborted) return undefined;
      let session: LiveSession;
      try {
        session = await deps.sessions.waitForSession(deps.stopSignal);
      } catch {
        return undefined;
      }
      try {
        const last = await send(session);
        const answer = this.receipts.expect(session.id, kind, deps.receiptTimeoutMs ?? 60_000);
        // When the send itself fails (the session closed), this answer is never awaited but is still
        // rejected by the ledger: without a handler that rejection would be unhandled and end the worker.
        answer.catch(() => {});
        await session.send(last);
        this.finalSent = true;
        return await answer;
      } catch (err) {
        if (err instanceof SessionClosedError) continue;
        if (err instanceof JobStop || err instanceof ReceiptTimeout) {
          deps.logger.warn({ jobId: this.jobId, kind, err: err.message }, `no receipt for ${kind}`);
          return undefined;
        }
        throw err;
      }
    }
  }

  private progress(update: ProgressUpdate) {
    if (!this.abort.signal.aborted) void this.throttle.submit(this.jobId, async () => this.sendProgress(update), update.phase);
  }

  private sendProgress(u: ProgressUpdate) {
    const session = this.deps.sessions.session;
    const progress = create(JobProgressSchema, {
      phase: u.phase,
      bytesDone: BigInt(Math.max(0, Math.floor(u.bytesDone ?? 0))),
      bytesTotal: BigInt(Math.max(0, Math.floor(u.bytesTotal ?? 0))),
      step: u.step ?? 0,
      steps: u.steps ?? 0,
      rate: u.rate ?? 0,
      message: u.message ?? "",
    });
    this.deps.view.progress(this.jobId, progress);
    session?.post({ case: "progress", value: create(JobProgressReportSchema, { ...this.ids(), progress }) });
  }

  private failMessage(error: string, retryable: boolean): SessionMessage {
    return { case: "fail", value: create(JobFailSchema, { ...this.ids(), error, retryable }) };
  }

  private ids() {
    return { jobId: this.jobId, leaseId: this.leaseId };
  }

  private end(outcome: JobOutcome, message?: string) {
    this.deps.view.finished(this.jobId, outcome, message);
    return { outcome, message };
  }
}

/** The failures the worker's own parts raise, each saying whether the job may run again. */
function isWorkerError(err: unknown): err is EngineError | DownloadError | OutputRefusedError {
  return err instanceof EngineError || err instanceof DownloadError || err instanceof OutputRefusedError;
}

/** Whether a failed job may run again: what the worker's error type says; anything unexpected may. */
function retryableOf(err: unknown): boolean {
  return isWorkerError(err) ? err.retryable : true;
}

/** The studio refused an output chunk (too large, bad digest): the job fails for good. */
class OutputRefusedError extends Error {
  readonly code = "output_refused";
  readonly retryable = false;
  constructor(r: Receipt) {
    super(`the studio refused an output: ${r.code} ${r.message}`);
  }
}
