import fs from "node:fs";
import fsp from "node:fs/promises";
import { filenameProblem, isSha256Hex, urlProblem } from "../../contract/index.js";
import type { ModelFile } from "../../gen/studio/v1/model_pb.js";
import { CacheLayout, type CacheKey } from "./cache-layout.js";
import { DownloadError, TransferFailure, isDiskFull } from "./errors.js";
import { CacheEvictor, touchBlob } from "./eviction.js";
import { downloadFile } from "./file-download.js";
import { lengthlessCap } from "./length-cap.js";
import { FileLock } from "./file-lock.js";
import { listUrlBlobs, lookupBlob, publishBlob, type CacheEntry } from "./blob-store.js";
import { resolveOptions, type DownloadManagerOptions, type ResolvedOptions } from "./options.js";
import { PinRegistry } from "./pins.js";
import { ProgressMeter, type DownloadProgress } from "./progress.js";
import { HashThreadPool } from "./hash-thread.js";
import { directFlags } from "./partial-file.js";
import { aggregateProgress } from "./aggregate-progress.js";

import { MAX_CACHED_URLS } from "../../contract/worker-limits.js";

/** A complete file in the cache, pinned against eviction until release(). */
export interface CachedFile {
  path: string;
  /** The file's digest: verified against the ModelFile's sha256, or computed while downloading an unverified file. */
  sha256: string | undefined;
  sizeBytes: number;
  verified: boolean;
  release(): void;
}

/** Per-call options of ensure/ensureAll. */
export interface EnsureOptions {
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
}

/** One shared download of a key in this process, with everyone waiting for it. */
interface Flight {
  promise: Promise<CacheEntry>;
  controller: AbortController;
  listeners: Set<(p: DownloadProgress) => void>;
  waiters: number;
}

/**
 * The worker's model cache: ensure() returns a complete, verified local copy of
 * a ModelFile, downloading only what is missing. One download per key runs at a
 * time across every process sharing cacheDir (a lock file) and within this
 * process (callers join the running download). Files stay pinned while a job
 * uses them, and the LRU budget never removes a pinned file.
 */
export class DownloadManager {
  private readonly opts: ResolvedOptions;
  private readonly layout: CacheLayout;
  private readonly pins: PinRegistry;
  private readonly evictor: CacheEvictor;
  private readonly flights = new Map<string, Flight>();
  private readonly hashThreads = new HashThreadPool();

  constructor(options: DownloadManagerOptions) {
    this.opts = resolveOptions(options, {
      openFile: (p, flags) => fsp.open(p, flags === "direct" ? directFlags(fs.constants) : flags),
      freeBytes: async (dir) => {
        const st = await fsp.statfs(dir);
        return st.bavail * st.bsize;
      },
    });
    this.layout = new CacheLayout(this.opts.cacheDir);
    for (const dir of this.layout.dirs()) fs.mkdirSync(dir, { recursive: true });
    this.pins = new PinRegistry(this.layout);
    this.evictor = new CacheEvictor(this.layout, this.pins, this.opts.lockStaleMs);
  }

  /** Returns the file, downloading what is missing; the result stays pinned until release(). */
  async ensure(file: ModelFile, options: EnsureOptions = {}): Promise<CachedFile> {
    const { signal, onProgress } = options;
    const key = this.checkFile(file);
    if (signal?.aborted) throw this.cancelled(file, signal.reason);
    let flight = this.flights.get(key.id);
    if (!flight || flight.controller.signal.aborted) flight = this.startFlight(key, file);
    const joined = flight;
    joined.waiters++;
    if (onProgress) joined.listeners.add(onProgress);
    try {
      const entry = await raceAbort(joined.promise, signal);
      const release = await this.pins.pin(key);
      return { ...entry, release };
    } catch (err) {
      if (signal?.aborted && !(err instanceof DownloadError)) {
        if (joined.waiters === 1) {
          // The last one waiting stops the download and returns once it has stopped (partial and sidecar saved).
          joined.controller.abort(signal.reason);
          await joined.promise.catch(() => {});
        }
        throw this.cancelled(file, signal.reason);
      }
      throw err;
    } finally {
      joined.waiters--;
      if (onProgress) joined.listeners.delete(onProgress);
    }
  }

  /** ensure() for several files at once, with progress summed over all; on any failure the rest are cancelled. */
  async ensureAll(files: ModelFile[], options: EnsureOptions = {}): Promise<CachedFile[]> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    const progress = aggregateProgress(files, this.opts.progressIntervalMs, options.onProgress);
    try {
      const results = await Promise.allSettled(
        files.map((file, i) =>
          this.ensure(file, { signal: controller.signal, onProgress: (p) => progress.update(i, p) }).catch((err: unknown) => {
            controller.abort(err);
            throw err;
          }),
        ),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      const done = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      if (failed) {
        for (const c of done) c.release();
        const real = results.find((r): r is PromiseRejectedResult => r.status === "rejected" && !(r.reason instanceof DownloadError && r.reason.kind === "cancelled"));
        throw (real ?? failed).reason;
      }
      progress.finish(done);
      return done;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** sha256 digests of the complete verified files in the cache (the worker lists them in hello). */
  cachedDigests(): string[] {
    try {
      return fs.readdirSync(`${this.opts.cacheDir}/blobs/sha256`).filter(isSha256Hex).sort();
    } catch {
      return [];
    }
  }

  /**
   * URLs of the complete files cached without a digest (ModelFiles with no sha256), at most
   * MAX_CACHED_URLS: the worker lists them in hello and cache_update so that the studio can
   * place jobs of sha-less models on a worker that already holds their files.
   */
  async cachedUrls(): Promise<string[]> {
    return (await listUrlBlobs(this.layout)).filter((u) => urlProblem(u) === undefined).slice(0, MAX_CACHED_URLS);
  }

  /**
   * Marks the cached copies of `files` as just used: a job a warm engine serves from files it already
   * holds skips ensure(), and without this the busiest model would look the least recently used.
   * A file no longer in the cache is skipped.
   */
  async touchCached(files: ModelFile[]): Promise<void> {
    await Promise.all(
      files.map((file) =>
        touchBlob(this.layout.blob(this.checkFile(file))).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "ENOENT") throw err;
        }),
      ),
    );
  }

  /** Evicts least recently used, unpinned files until the cache fits cacheMaxBytes (no-op without a budget). */
  async evictOnce(): Promise<{ removed: number; freedBytes: number }> {
    const budget = this.opts.cacheMaxBytes;
    if (budget === undefined) return { removed: 0, freedBytes: 0 };
    const result = await this.evictor.evictUntil((total) => total <= budget);
    if (result.removed > 0) this.opts.logger.info({ ...result, budget }, "cache eviction");
    return result;
  }

  private startFlight(key: CacheKey, file: ModelFile): Flight {
    const controller = new AbortController();
    const flight: Flight = { controller, listeners: new Set(), waiters: 0, promise: undefined as never };
    const emit = (p: DownloadProgress) => {
      for (const l of flight.listeners) l(p);
    };
    flight.promise = this.fetchLocked(key, file, controller.signal, emit).finally(() => {
      if (this.flights.get(key.id) === flight) this.flights.delete(key.id);
    });
    flight.promise.catch(() => {});
    this.flights.set(key.id, flight);
    return flight;
  }

  /** Under the key's lock: a cache hit, or a download published into the cache. Pins on behalf of the flight until its callers pinned. */
  private async fetchLocked(key: CacheKey, file: ModelFile, signal: AbortSignal, emit: (p: DownloadProgress) => void): Promise<CacheEntry> {
    const approxBytes = file.approxBytes !== undefined ? Number(file.approxBytes) : undefined;
    const meter = new ProgressMeter(this.opts.progressIntervalMs, emit, { filename: file.filename, url: file.url, bytesTotal: approxBytes, verified: key.kind === "sha256" });
    let lock;
    try {
      lock = await new FileLock(this.layout.lock(key), this.opts.lockStaleMs).acquire(signal);
    } catch (err) {
      throw signal.aborted ? this.cancelled(file, signal.reason) : this.asError(file, err);
    }
    try {
      let entry = await lookupBlob(this.layout, key, file, this.opts, signal);
      if (!entry) {
        if (key.kind === "url") this.opts.logger.warn({ url: file.url, filename: file.filename }, "downloading an unverified file (no sha256 in its ModelFile)");
        const free = approxBytes === undefined ? await this.opts.freeBytes(this.opts.cacheDir) : Infinity;
        const finished = await downloadFile(
          {
            url: file.url,
            filename: file.filename,
            expectedSha256: key.kind === "sha256" ? key.name : undefined,
            approxBytes,
            lengthCap: lengthlessCap(approxBytes, this.opts.lengthlessSlackBytes, this.opts.cacheMaxBytes, free),
            partialPath: this.layout.partial(key),
            statePath: this.layout.partialState(key),
            policy: { hfToken: this.opts.hfToken, isTokenHost: this.opts.isTokenHost, maxRedirects: this.opts.maxRedirects },
            openFile: this.opts.openFile,
            directIo: this.opts.directIo,
            hashThreads: this.hashThreads,
            stallTimeoutMs: this.opts.stallTimeoutMs,
            maxRetries: this.opts.maxRetries,
            retryBaseDelayMs: this.opts.retryBaseDelayMs,
            partThresholdBytes: this.opts.partThresholdBytes,
            parts: this.opts.parts,
            logger: this.opts.logger,
            ensureSpace: (bytes) => this.ensureSpace(bytes),
            onBytes: (done, total) => meter.update(done, { bytesTotal: total ?? approxBytes }),
          },
          signal,
        );
        entry = await publishBlob(this.layout, key, file, finished);
        this.opts.logger.info({ url: file.url, filename: file.filename, sha256: entry.sha256, sizeBytes: entry.sizeBytes, verified: entry.verified }, "download complete");
      }
      await touchBlob(entry.path);
      const unpin = await this.pins.pin(key);
      setTimeout(unpin, 0);
      if (this.opts.cacheMaxBytes !== undefined) await this.evictOnce().catch((err) => this.opts.logger.warn({ err: String(err) }, "cache eviction failed"));
      meter.update(entry.sizeBytes, { bytesTotal: entry.sizeBytes, verified: entry.verified }, true);
      return entry;
    } catch (err) {
      throw this.asError(file, err);
    } finally {
      await lock.release();
    }
  }

  /** Fails early when `bytes` cannot fit on the cache's disk, after evicting unpinned files to make room. */
  private async ensureSpace(bytes: number): Promise<void> {
    const margin = 16 * 1024 * 1024;
    let free = await this.opts.freeBytes(this.opts.cacheDir);
    if (free >= bytes + margin) return;
    await this.evictor.evictUntil((_total, freed) => free + freed >= bytes + margin);
    free = await this.opts.freeBytes(this.opts.cacheDir);
    if (free >= bytes) return;
    throw new TransferFailure({ kind: "disk", retryable: false, message: `not enough disk space: need ${bytes} bytes, ${free} free in ${this.opts.cacheDir}` });
  }

  private checkFile(file: ModelFile): CacheKey {
    const problem =
      (filenameProblem(file.filename) && `filename ${JSON.stringify(file.filename)} ${filenameProblem(file.filename)}`) ||
      (urlProblem(file.url) && `url ${urlProblem(file.url)}`) ||
      (file.sha256 !== undefined && !isSha256Hex(file.sha256.toLowerCase()) && `sha256 must be 64 hex digits, got ${JSON.stringify(file.sha256)}`);
    if (problem) throw new DownloadError({ kind: "invalid", retryable: false, url: file.url, filename: file.filename, message: problem });
    return CacheLayout.keyFor(file.sha256?.toLowerCase(), file.url);
  }

  private cancelled(file: ModelFile, reason: unknown): DownloadError {
    return new DownloadError({ kind: "cancelled", retryable: false, url: file.url, filename: file.filename, message: "download cancelled", cause: reason });
  }

  private asError(file: ModelFile, err: unknown): DownloadError {
    if (err instanceof DownloadError) return err;
    const base = { url: file.url, filename: file.filename };
    if (err instanceof TransferFailure) return new DownloadError({ ...base, ...err.init });
    if (isDiskFull(err)) return new DownloadError({ ...base, kind: "disk", retryable: false, message: "disk full", cause: err });
    const detail = err instanceof Error ? err.message : String(err);
    return new DownloadError({ ...base, kind: "disk", retryable: false, message: `cache error: ${detail}`, cause: err });
  }
}

/** Resolves like `promise`, or rejects as soon as the signal aborts (the promise keeps running for others). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => (signal.removeEventListener("abort", onAbort), resolve(v)),
      (e) => (signal.removeEventListener("abort", onAbort), reject(e)),
    );
  });
}
