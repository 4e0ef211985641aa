import { create } from "@bufbuild/protobuf";
import { utf8Length } from "../../contract/text-delta.js";
import { StreamedTextSchema, type StreamedText, type TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { JobChange, JobEvents } from "../events/job-events.js";
import type { Logger } from "../log.js";
import type { TextFeed } from "./text-feed.js";
import type { TextStore } from "./text-store.js";

/** The most text (answer and reasoning, UTF-8 bytes) kept per job; pieces past it are not relayed (readers take the rest from the output). */
export const MAX_STREAMED_TEXT_BYTES = 4 * 1024 * 1024;

/** How pieces reach the other replicas (ClusterTextBus on PostgreSQL). */
export interface TextBus {
  /** Sends one of this replica's pieces to the others (batched, in order). */
  publish(delta: TextDelta): void;
  /** The others' pieces, in the order each replica sent them. */
  subscribe(listener: (delta: TextDelta) => void): () => void;
  /** Waits until what was published has gone out. */
  close(): Promise<void>;
}

export interface TextStreamsOptions {
  events: JobEvents;
  store: TextStore;
  bus?: TextBus;
  logger: Logger;
  /** How often a running job's text is written to the database (jobs of this replica's workers only). */
  flushMs?: number;
  /** A job's text untouched for this long leaves memory (its end was never heard). */
  idleMs?: number;
  now?: () => number;
}

/** One job's text as this replica holds it. */
interface JobText {
  attempt: number;
  text: string;
  reasoning: string;
  /** Offsets (UTF-8 bytes) this copy starts at: 0 unless this replica joined the stream late or saw a gap. */
  textStart: number;
  reasoningStart: number;
  /** Offsets this copy ends at. */
  textEnd: number;
  reasoningEnd: number;
  tokens: number;
  /** A worker on this replica sends it: this replica keeps it in the database. */
  local: boolean;
  dirty: boolean;
  /** Written to the database at least once. */
  kept: boolean;
  full: boolean;
  saving: Promise<void> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  touched: number;
}

const HELD = new Set(["OFFERED", "RUNNING"]);

/**
 * Text jobs' output as their engines stream it. A worker's session hands each piece here
 * (receive, after checking the lease); pieces are kept in memory per job and attempt, passed to
 * this replica's listeners (WatchJobs, the OpenAI API) and, with several replicas, to the others
 * over the bus; the replica whose worker sends them writes the text so far to the database about
 * once a second and when the job stops, so GetJob and a late watcher on any replica read it. The
 * job's output stays the whole result: a succeeded job's kept text is removed.
 * Nothing here runs for jobs that do not stream, but one map lookup per job event.
 */
export class TextStreams implements TextFeed {
  readonly #jobs = new Map<string, JobText>();
  readonly #listeners = new Map<string, Set<(d: TextDelta) => void>>();
  readonly #all = new Set<(d: TextDelta) => void>();
  /** The model of each job a worker holds, from job events (watches filtered by model). */
  readonly #models = new Map<string, string>();
  readonly #o: Required<Omit<TextStreamsOptions, "bus">> & { bus?: TextBus };
  readonly #unsubscribe: Array<() => void> = [];
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(options: TextStreamsOptions) {
    this.#o = { flushMs: 1000, idleMs: 120_000, now: Date.now, ...options };
  }

  start(): void {
    this.#unsubscribe.push(this.#o.events.subscribe((c) => this.#onChange(c)));
    if (this.#o.bus) this.#unsubscribe.push(this.#o.bus.subscribe((d) => this.#apply(d, false)));
    this.#sweep = setInterval(() => this.#dropIdle(), Math.max(1000, this.#o.idleMs / 4));
    this.#sweep.unref?.();
  }

  /** Stops listening, and writes what this replica's workers sent that the database has not seen. */
  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    clearInterval(this.#sweep);
    const jobs = [...this.#jobs];
    this.#jobs.clear();
    await Promise.all(jobs.map(([id, s]) => (s.local ? this.#save(id, s) : undefined)));
    await this.#o.bus?.close();
  }

  /** A piece from a worker session on this replica, its lease already checked. */
  receive(delta: TextDelta): void {
    this.#apply(delta, true);
  }

  subscribe(jobId: string | undefined, listener: (delta: TextDelta) => void): () => void {
    if (jobId === undefined) {
      this.#all.add(listener);
      return () => void this.#all.delete(listener);
    }
    let set = this.#listeners.get(jobId);
    if (!set) this.#listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(jobId) === set) this.#listeners.delete(jobId);
    };
  }

  /** The model of a job a worker holds now, as this replica heard it. */
  modelOf(jobId: string): string | undefined {
    return this.#models.get(jobId);
  }

  current(jobId: string): StreamedText | undefined {
    const s = this.#jobs.get(jobId);
    if (!s || s.textStart !== 0 || s.reasoningStart !== 0) return undefined;
    return create(StreamedTextSchema, { text: s.text, reasoning: s.reasoning, tokens: s.tokens, attempt: s.attempt });
  }

  async read(jobId: string): Promise<StreamedText | undefined> {
    return this.current(jobId) ?? (await this.#o.store.load(jobId));
  }

  #apply(delta: TextDelta, local: boolean): void {
    const id = delta.jobId;
    const textOffset = Number(delta.textOffset);
    const reasoningOffset = Number(delta.reasoningOffset);
    let s = this.#jobs.get(id);
    if (s && delta.attempt < s.attempt) return;
    if (!s || delta.attempt > s.attempt) {
      if (s?.timer) clearTimeout(s.timer);
      s = {
        attempt: delta.attempt,
        text: "",
        reasoning: "",
        textStart: textOffset,
        reasoningStart: reasoningOffset,
        textEnd: textOffset,
        reasoningEnd: reasoningOffset,
        tokens: 0,
        local,
        dirty: false,
        kept: s?.kept ?? false,
        full: false,
        saving: s?.saving,
        timer: undefined,
        touched: 0,
      };
      this.#jobs.set(id, s);
    }
    s.touched = this.#o.now();
    const textBytes = utf8Length(delta.text);
    const reasoningBytes = utf8Length(delta.reasoning);
    if (textOffset !== s.textEnd || reasoningOffset !== s.reasoningEnd) {
      if (textOffset + textBytes <= s.textEnd && reasoningOffset + reasoningBytes <= s.reasoningEnd) return; // a repeat
      // A gap (a piece lost between replicas): this copy starts again here, as its offsets say;
      // whoever needs the whole text reads the database or the output.
      Object.assign(s, { text: "", reasoning: "", textStart: textOffset, reasoningStart: reasoningOffset, textEnd: textOffset, reasoningEnd: reasoningOffset });
    }
    if (s.full || s.textEnd + s.reasoningEnd + textBytes + reasoningBytes > MAX_STREAMED_TEXT_BYTES) {
      s.full = true;
      return;
    }
    s.text += delta.text;
    s.reasoning += delta.reasoning;
    s.textEnd += textBytes;
    s.reasoningEnd += reasoningBytes;
    s.tokens = Math.max(s.tokens, delta.tokens);
    if (local) {
      s.local = true;
      s.dirty = true;
      this.#o.bus?.publish(delta);
      this.#schedule(id, s);
    }
    const listeners = this.#listeners.get(id);
    if (listeners) for (const l of listeners) this.#call(l, delta);
    for (const l of this.#all) this.#call(l, delta);
  }

  #call(listener: (d: TextDelta) => void, delta: TextDelta) {
    try {
      listener(delta);
    } catch (err) {
      this.#o.logger.error({ err, jobId: delta.jobId }, "a text stream listener threw");
    }
  }

  #schedule(id: string, s: JobText) {
    s.timer ??= setTimeout(() => {
      s.timer = undefined;
      void this.#save(id, s).then(() => {
        if (s.dirty && this.#jobs.get(id) === s) this.#schedule(id, s);
      });
    }, this.#o.flushMs);
  }

  #onChange(change: JobChange): void {
    if (HELD.has(change.status)) {
      this.#models.set(change.jobId, change.model);
      return;
    }
    this.#models.delete(change.jobId);
    const s = this.#jobs.get(change.jobId);
    if (!s) return;
    // Back in the queue or ended: this attempt streams no more.
    this.#jobs.delete(change.jobId);
    if (!s.local) return;
    clearTimeout(s.timer);
    s.timer = undefined;
    if (change.status === "SUCCEEDED") void this.#forget(change.jobId, s);
    else void this.#save(change.jobId, s);
  }

  /** Writes a job's text unless nothing changed since the last write; one write at a time per job. */
  async #save(jobId: string, s: JobText): Promise<void> {
    while (s.saving) await s.saving;
    // Only a whole copy is written: a fragment (this replica took over mid-stream) would hide the beginning.
    if (!s.dirty || s.textStart !== 0 || s.reasoningStart !== 0) return;
    s.dirty = false;
    const text = create(StreamedTextSchema, { text: s.text, reasoning: s.reasoning, tokens: s.tokens, attempt: s.attempt });
    s.saving = this.#o.store.save(jobId, text).then(
      () => void (s.kept = true),
      (err) => this.#o.logger.warn({ err, jobId }, "could not keep a job's streamed text"),
    );
    await s.saving;
    s.saving = undefined;
  }

  /** A succeeded job's output holds its text: what was kept while it ran goes. */
  async #forget(jobId: string, s: JobText): Promise<void> {
    while (s.saving) await s.saving;
    if (!s.kept && s.textStart === 0 && s.reasoningStart === 0) return;
    await this.#o.store.remove(jobId).catch((err) => this.#o.logger.warn({ err, jobId }, "could not remove a job's streamed text"));
  }

  #dropIdle(): void {
    const before = this.#o.now() - this.#o.idleMs;
    for (const [id, s] of this.#jobs)
      if (s.touched < before) {
        this.#jobs.delete(id);
        if (s.local) void this.#save(id, s);
      }
  }
}
