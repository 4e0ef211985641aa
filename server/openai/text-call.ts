import { decodeTextOutput, TEXT_OUTPUT_MIME } from "../../contract/text-output.js";
import type { TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { HttpResponse } from "../http/http-routes.js";
import { sendJson } from "../http/http-routes.js";
import type { JobRow } from "../jobs/job-row.js";
import type { OpenAiDeps } from "./api-deps.js";
import { cancelQuietly, jobEndedError, onClientGone, unclaimedError } from "./job-call.js";
import { followJob } from "./job-follower.js";
import { OpenAiError, sendOpenAiError } from "./openai-errors.js";
import { SseWriter } from "./sse.js";
import { ChunkFormat, textResponse, type TextResult } from "./text-format.js";
import type { TextRequest } from "./text-request.js";

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * One chat or completions request whose job is queued: waits for a worker to take it (503 after
 * the wait), then answers with the whole result, or (stream) with Server-Sent Events carrying each
 * piece of text as the worker relays it, closing with the finish reason, the usage when asked,
 * and [DONE]. The job's output is the truth: what the stream missed (pieces lost between
 * replicas) is sent from it at the end. A client that goes away cancels the job, which stops
 * the engine's request on the worker.
 */
export class TextCall {
  readonly #id: string;
  readonly #created: number;
  readonly #format: ChunkFormat;
  readonly #sse: SseWriter | undefined;
  #finished = false;
  #attempt = 0;
  #sentText = "";
  #sentTextBytes = 0;
  #sentReasoning = "";
  #sentReasoningBytes = 0;
  /** Pieces stopped lining up (a piece lost between replicas): the rest comes from the output. */
  #gap = false;
  #follower: { stop(): void } | undefined;
  #done!: () => void;

  constructor(
    private readonly kind: "chat" | "completion",
    private readonly request: TextRequest,
    private readonly row: JobRow,
    private readonly res: HttpResponse,
    private readonly deps: OpenAiDeps,
  ) {
    this.#id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${row.id}`;
    this.#created = Math.floor(row.createdAt / 1000);
    this.#format = new ChunkFormat(kind, this.#id, request.model, this.#created, request.includeUsage);
    this.#sse = request.stream ? new SseWriter(res, { "x-studio-job-id": row.id }) : undefined;
  }

  /** Resolves once the response is finished (or the client is gone). */
  run(): Promise<void> {
    const finished = new Promise<void>((resolve) => (this.#done = resolve));
    onClientGone(this.res, () => this.#finished, () => {
      this.#finish();
      cancelQuietly(this.deps, this.row.id, "the client went away before the answer was complete");
    });
    this.#follower = followJob(
      this.row.id,
      { events: this.deps.events, getJob: this.deps.getJob, texts: this.deps.texts, waitMs: this.deps.waitMs },
      {
        taken: () => this.#taken(),
        requeued: () => this.#requeued(),
        delta: (d) => this.#delta(d),
        ended: (row) => void this.#ended(row).catch((err) => this.#fail(err)),
        unclaimed: (waited) => void this.#unclaimed(waited).catch((err) => this.#fail(err)),
        failed: (err) => this.#fail(err),
      },
    );
    return finished;
  }

  #taken() {
    if (!this.#sse || this.#sse.started) return;
    this.#sse.start(this.#format.role());
  }

  #requeued() {
    // Before any text went out a retry is invisible to the client; after, it would repeat or
    // contradict what was sent, so the job is stopped instead.
    if (this.#sentTextBytes === 0 && this.#sentReasoningBytes === 0) return;
    this.#follower?.stop();
    cancelQuietly(this.deps, this.row.id, "its worker failed mid-stream; a retry would repeat the text already sent");
    this.#error(new OpenAiError(500, "server_error", `job ${this.row.id}'s worker failed after the answer had begun; the job was cancelled`, "job_interrupted"));
  }

  #delta(d: TextDelta) {
    if (!this.#sse || this.#finished) return;
    if (this.#attempt === 0 || (d.attempt > this.#attempt && this.#sentTextBytes === 0 && this.#sentReasoningBytes === 0)) this.#attempt = d.attempt;
    if (d.attempt !== this.#attempt || this.#gap) return;
    if (Number(d.textOffset) !== this.#sentTextBytes || Number(d.reasoningOffset) !== this.#sentReasoningBytes) {
      this.#gap = true;
      return;
    }
    this.#taken();
    if (d.reasoning !== "") {
      this.#sentReasoning += d.reasoning;
      this.#sentReasoningBytes += utf8Length(d.reasoning);
      const chunk = this.#format.reasoning(d.reasoning);
      if (chunk) this.#sse.data(chunk);
    }
    if (d.text !== "") {
      this.#sentText += d.text;
      this.#sentTextBytes += utf8Length(d.text);
      this.#sse.data(this.#format.text(d.text));
    }
  }

  async #ended(row: JobRow) {
    if (this.#finished) return;
    if (row.status !== "SUCCEEDED") return this.#error(jobEndedError(row));
    const result = await this.#readResult(row);
    if (this.#finished) return;
    if (!this.#sse) {
      this.#finished = true;
      sendJson(this.res, 200, textResponse(this.kind, this.#id, this.request.model, this.#created, result));
      return this.#finish();
    }
    this.#taken();
    // What the pieces did not bring (a gap, or a worker that does not stream): from the output.
    const reasoning = result.reasoning ?? "";
    if (reasoning.startsWith(this.#sentReasoning) && reasoning.length > this.#sentReasoning.length) {
      const chunk = this.#format.reasoning(reasoning.slice(this.#sentReasoning.length));
      if (chunk) this.#sse.data(chunk);
    }
    if (result.text.startsWith(this.#sentText)) {
      if (result.text.length > this.#sentText.length) this.#sse.data(this.#format.text(result.text.slice(this.#sentText.length)));
    } else {
      this.deps.logger.warn({ jobId: row.id }, "OpenAI API: the streamed text is not a prefix of the job's output; the stream ends with what was sent");
    }
    this.#finished = true;
    this.#sse.done([this.#format.finish(result.finishReason), ...(this.request.includeUsage ? [this.#format.usage(result)] : [])]);
    this.#finish();
  }

  async #readResult(row: JobRow): Promise<TextResult> {
    const { mimeType, data } = await this.deps.readOutput(row, 0);
    if (mimeType !== TEXT_OUTPUT_MIME) throw new Error(`job ${row.id}'s output is ${mimeType}, not a text result`);
    return decodeTextOutput(data);
  }

  async #unclaimed(waitedMs: number) {
    if (this.#finished) return;
    // Stop listening first: the cancel's own CANCELLED event must not answer in place of the 503.
    this.#follower?.stop();
    const err = await unclaimedError(this.deps, this.row, waitedMs);
    cancelQuietly(this.deps, this.row.id, `no worker took it within ${waitedMs} ms`);
    this.#error(err);
  }

  #fail(err: unknown) {
    if (this.#finished) return;
    this.deps.logger.error({ jobId: this.row.id, err }, "OpenAI API: following the job failed");
    if (err instanceof OpenAiError) return this.#error(err);
    this.#error(new OpenAiError(500, "server_error", `following job ${this.row.id} failed: ${err instanceof Error ? err.message : String(err)}`, "internal_error"));
  }

  /** An error: the status and JSON body before the stream began, an error event (and no [DONE]) after. */
  #error(err: OpenAiError) {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#sse?.started) {
      this.#sse.data(JSON.stringify(err.body()));
      this.#sse.end();
    } else sendOpenAiError(this.res, err);
    this.#finish();
  }

  #finish() {
    this.#finished = true;
    this.#follower?.stop();
    this.#done();
  }
}
