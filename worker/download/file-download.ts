import fs from "node:fs/promises";
import { TransferFailure, type FailureInit } from "./errors.js";
import { setTimeout as sleep } from "node:timers/promises";
import { Backoff } from "../../contract/backoff.js";
import { ifRangeValidator, type FetchPolicy } from "./http-fetch.js";
import type { HashThread, HashThreadPool, SharedBytes } from "./hash-thread.js";
import { OrderedHasher } from "./ordered-hasher.js";
import type { LengthCap } from "./length-cap.js";
import { blockPair } from "./block-writer.js";
import type { DownloadLogger, OpenFile } from "./options.js";
import { PartialFile } from "./partial-file.js";
import { streamPart } from "./part-stream.js";
import { bytesDone, readPartialState, writePartialState, type PartState, type PartialState } from "./partial-state.js";
import { RestartFromZero, openFresh, openRange } from "./range-requests.js";

/** Everything one file download needs; the manager fills it in. */
export interface FileDownloadPlan {
  url: string;
  filename: string;
  expectedSha256: string | undefined;
  approxBytes: number | undefined;
  /** How far a body without Content-Length may run (lengthlessCap). */
  lengthCap: LengthCap;
  partialPath: string;
  statePath: string;
  policy: FetchPolicy;
  openFile: OpenFile;
  /** Aligned blocks bypass the page cache where the filesystem allows (PartialFile). */
  directIo: boolean;
  /** Where the SHA-256 runs: a thread borrowed for this download. */
  hashThreads: HashThreadPool;
  stallTimeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  partThresholdBytes: number;
  parts: number;
  logger: DownloadLogger;
  /** Fails (with a disk TransferFailure) when `bytes` more cannot fit, after trying to make room. */
  ensureSpace(bytes: number): Promise<void>;
  onBytes(done: number, total: number | undefined): void;
}

/** A finished partial file, hashed and synced, ready to be renamed into the cache. */
export interface FinishedDownload {
  sha256: string;
  sizeBytes: number;
  etag: string | undefined;
  lastModified: string | undefined;
}

const STATE_SAVE_MS = 1000;

/**
 * Downloads one file into its partial path: resumes from the sidecar when one
 * matches, fetches parallel ranges for large files on servers that accept
 * ranges, retries network errors, 5xx and stalls with exponential backoff and
 * full jitter, restarts from zero when the server answers a Range with 200, and
 * verifies the sha256 computed while writing. On a permanent failure the
 * partial is deleted (a cancel keeps it for the next resume).
 */
export async function downloadFile(plan: FileDownloadPlan, signal: AbortSignal): Promise<FinishedDownload> {
  const saved = await readPartialState(plan.statePath, plan.url);
  const file = await openPartial(plan, saved !== undefined && canResume(saved, plan));
  const thread = plan.hashThreads.acquire();
  try {
    let state: PartialState | undefined;
    if (saved && canResume(saved, plan) && (await file.stat()).size >= Math.max(...saved.parts.map((p) => p.next))) state = saved;
    else await file.truncate(0);
    const ctx: AttemptContext = { state, thread, hasher: new OrderedHasher(file, state?.parts ?? [], thread) };
    const backoff = new Backoff({ initialMs: plan.retryBaseDelayMs, maxMs: Math.max(30_000, plan.retryBaseDelayMs) });
    let resumed = ctx.state !== undefined;
    let restartedAfterMismatch = false;
    for (;;) {
      if (ctx.state && !canResume(ctx.state, plan)) await startOver(plan, file, ctx);
      const before = ctx.state ? bytesDone(ctx.state) : 0;
      if (before > 0) resumed = true;
      try {
        const state = await runAttempt(plan, file, ctx, signal);
        await ctx.hasher.catchUp();
        return await finish(plan, file, state, ctx.hasher);
      } catch (err) {
        const mismatch = err instanceof TransferFailure && err.init.kind === "integrity";
        if (mismatch && resumed && !restartedAfterMismatch) {
          // The resumed prefix may be what is wrong (a server that changed the file under the same validator): once, start clean.
          restartedAfterMismatch = true;
          resumed = false;
          plan.logger.warn({ url: plan.url, filename: plan.filename, reason: err.message }, "resumed download failed verification; downloading again from zero");
          await startOver(plan, file, ctx);
          continue;
        }
        if (err instanceof RestartFromZero) {
          plan.logger.warn({ url: plan.url, filename: plan.filename, reason: err.message }, "download restarts from zero");
          await startOver(plan, file, ctx);
          continue;
        }
        const failure = asFailure(err, signal);
        if (!failure.retryable && failure.kind !== "cancelled") {
          await discard(plan);
          throw new TransferFailure(failure);
        }
        if (ctx.state) await writePartialState(plan.statePath, ctx.state).catch(() => {});
        if (!failure.retryable) throw new TransferFailure(failure);
        // An attempt that moved the download forward starts the retries over.
        if (ctx.state && canResume(ctx.state, plan) && bytesDone(ctx.state) > before) backoff.reset();
        if (backoff.attempts >= plan.maxRetries) {
          throw new TransferFailure({ ...failure, message: `${failure.message}; gave up after ${plan.maxRetries} retries` });
        }
        const delay = backoff.next();
        plan.logger.warn({ url: plan.url, filename: plan.filename, kind: failure.kind, retry: backoff.attempts, delayMs: Math.round(delay) }, `download retry: ${failure.message}`);
        try {
          await sleep(delay, undefined, { signal });
        } catch (reason) {
          throw new TransferFailure(asFailure(reason, signal));
        }
      }
    }
  } finally {
    plan.hashThreads.release(thread);
    await file.close().catch(() => {});
  }
}

/** The download's progress shared across attempts: the parts and the hasher survive a retry. */
interface AttemptContext {
  state: PartialState | undefined;
  thread: HashThread;
  hasher: OrderedHasher;
}

async function startOver(plan: FileDownloadPlan, file: PartialFile, ctx: AttemptContext): Promise<void> {
  ctx.state = undefined;
  await fs.rm(plan.statePath, { force: true });
  await file.truncate(0);
  ctx.hasher = new OrderedHasher(file, [], ctx.thread);
}

/** A sidecar is only trusted when the server can be asked for "the same version" or the digest will catch a change. */
function canResume(state: PartialState, plan: FileDownloadPlan): boolean {
  if (!state.acceptsRanges) return false;
  return ifRangeValidator(state.etag, state.lastModified) !== undefined || plan.expectedSha256 !== undefined;
}

async function openPartial(plan: FileDownloadPlan, resume: boolean): Promise<PartialFile> {
  const options = { directIo: plan.directIo, logger: plan.logger };
  if (resume) {
    try {
      return await PartialFile.open(plan.openFile, plan.partialPath, "r+", options);
    } catch {
      await fs.rm(plan.statePath, { force: true });
    }
  }
  return PartialFile.open(plan.openFile, plan.partialPath, "w+", options);
}

/** One pass: starts (or resumes) every unfinished part concurrently; returns the state once all are complete. */
async function runAttempt(plan: FileDownloadPlan, file: PartialFile, ctx: AttemptContext, outer: AbortSignal): Promise<PartialState> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(outer.reason);
  outer.addEventListener("abort", onOuterAbort, { once: true });
  const lastByteAt = new Map<PartState | "head", number>([["head", Date.now()]]);
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const t of lastByteAt.values())
      if (now - t > plan.stallTimeoutMs) {
        controller.abort(new TransferFailure({ kind: "stall", retryable: true, message: `no bytes for ${plan.stallTimeoutMs} ms` }));
        return;
      }
  }, Math.max(5, Math.floor(plan.stallTimeoutMs / 4)));
  const signal = controller.signal;
  let firstError: unknown;
  const fail = (err: unknown) => {
    firstError ??= err;
    if (!signal.aborted) controller.abort(err);
  };
  let dirty = false;
  let saving: Promise<void> = Promise.resolve();
  const saver = setInterval(() => {
    if (!dirty || !ctx.state) return;
    dirty = false;
    const snapshot = structuredClone(ctx.state);
    saving = saving.then(() => writePartialState(plan.statePath, snapshot)).catch(() => {});
  }, STATE_SAVE_MS);
  const running: Promise<void>[] = [];
  try {
    outer.throwIfAborted();
    let first: { part: PartState; body: ReadableStream<Uint8Array> } | undefined;
    let pending: PartState[];
    if (!ctx.state) {
      const opened = await openFresh(plan, file, signal);
      ctx.state = opened.state;
      ctx.hasher = new OrderedHasher(file, opened.state.parts, ctx.thread);
      await writePartialState(plan.statePath, opened.state);
      first = { part: opened.state.parts[0]!, body: opened.body };
      pending = opened.state.parts.slice(1);
    } else {
      pending = ctx.state.parts.filter((p) => p.end === undefined || p.next < p.end);
      const remaining = (ctx.state.totalBytes ?? plan.approxBytes ?? 0) - bytesDone(ctx.state);
      await plan.ensureSpace(Math.max(0, remaining));
    }
    lastByteAt.delete("head");
    const state = ctx.state;
    const hasher = ctx.hasher;
    const sink = {
      file,
      hasher,
      signal,
      lengthCap: plan.lengthCap,
      onWritten: () => {
        plan.onBytes(bytesDone(state), state.totalBytes);
        dirty = true;
        if (hasher.position < bytesDone(state)) void hasher.catchUp().catch(fail);
      },
    };
    const run = async (part: PartState, buffers: [SharedBytes, SharedBytes], body?: ReadableStream<Uint8Array>) => {
      lastByteAt.set(part, Date.now());
      const stream = body ?? (await openRange(plan, state, part, signal));
      await streamPart(stream, part, sink, () => lastByteAt.set(part, Date.now()), buffers);
      lastByteAt.delete(part);
    };
    // `plan.parts` connections take the pending pieces in file order, one at a time, each through its own pair of block buffers.
    const connections = Math.max(1, Math.min(plan.parts, pending.length + (first ? 1 : 0)));
    const connection = async (firstPiece?: { part: PartState; body: ReadableStream<Uint8Array> }) => {
      const buffers = blockPair(state.totalBytes, connections);
      if (firstPiece) await run(firstPiece.part, buffers, firstPiece.body);
      for (let part = pending.shift(); part && !signal.aborted; part = pending.shift()) await run(part, buffers);
    };
    for (let i = 0; i < connections; i++) running.push(connection(i === 0 ? first : undefined).catch(fail));
    await Promise.all(running);
    if (firstError !== undefined) throw firstError;
    if (state.totalBytes === undefined) state.totalBytes = state.parts[0]!.next;
    return state;
  } catch (err) {
    fail(err);
    await Promise.allSettled(running);
    throw firstError;
  } finally {
    clearInterval(watchdog);
    clearInterval(saver);
    outer.removeEventListener("abort", onOuterAbort);
    await saving;
  }
}

async function finish(plan: FileDownloadPlan, file: PartialFile, state: PartialState, hasher: OrderedHasher): Promise<FinishedDownload> {
  const size = state.totalBytes!;
  if (hasher.position !== size)
    throw new TransferFailure({ kind: "network", retryable: true, message: `hashed ${hasher.position} of ${size} bytes` });
  const sha256 = await hasher.digest();
  if (plan.expectedSha256 !== undefined && sha256 !== plan.expectedSha256) {
    throw new TransferFailure({
      kind: "integrity",
      retryable: false,
      message: `sha256 mismatch: expected ${plan.expectedSha256}, got ${sha256} over ${size} bytes; the file was deleted`,
    });
  }
  await file.datasync();
  return { sha256, sizeBytes: size, etag: state.etag, lastModified: state.lastModified };
}

async function discard(plan: FileDownloadPlan): Promise<void> {
  await fs.rm(plan.partialPath, { force: true });
  await fs.rm(plan.statePath, { force: true });
}

function asFailure(err: unknown, signal: AbortSignal): FailureInit {
  if (err instanceof TransferFailure) return err.init;
  if (signal.aborted) return { kind: "cancelled", retryable: false, message: "download cancelled", cause: err };
  const detail = err instanceof Error ? err.message : String(err);
  return { kind: "network", retryable: true, message: `unexpected error: ${detail}`, cause: err };
}
