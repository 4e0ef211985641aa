import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createHash } from "node:crypto";
import type { Offer } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import {
  SessionRequestSchema,
  WorkerService,
  type CancelOrder,
  type Receipt,
  type SessionRequest,
  type SessionResponse,
  type Welcome,
  type WorkerHello,
} from "../../gen/studio/v1/worker_service_pb.js";
import { createWritableIterable } from "@connectrpc/connect/protocol";

export type Protocol = "connect" | "grpc";

/** An HTTP/2 transport of the chosen protocol to a studio, as real workers use. */
export function h2Transport(baseUrl: string, protocol: Protocol = "connect"): Transport {
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl })
    : createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
}

type Msg = SessionResponse["message"];

/**
 * A simulated streaming worker for tests: a real WorkerService.Session over
 * HTTP/2 on loopback, with an inbox the test awaits (no sleeps).
 */
export class SimWorker {
  /** The request side: connect-es's writable iterable, written without waiting for the transport to take each message. */
  readonly #out = createWritableIterable<SessionRequest>();
  readonly #inbox: Msg[] = [];
  readonly #frames: Msg[] = [];
  #waiters: (() => void)[] = [];
  #ended = false;
  #error: unknown;
  readonly done: Promise<void>;
  welcome!: Welcome;

  private constructor(readonly client: Client<typeof WorkerService>) {
    const responses = client.session(this.#out);
    this.done = (async () => {
      try {
        for await (const r of responses) this.#deliver(r.message);
      } catch (err) {
        this.#error = err;
      } finally {
        this.#ended = true;
        this.#notify();
      }
    })();
  }

  /** Connects, says hello and waits for welcome. */
  static async connect(
    transport: Transport,
    hello: Partial<Omit<WorkerHello, "$typeName" | "$unknown">> = {},
  ): Promise<SimWorker> {
    const w = new SimWorker(createClient(WorkerService, transport));
    w.send({ case: "hello", value: { name: "sim", version: "test", engines: [ModelEngine.SYNTHETIC], slots: 1, ...hello } });
    w.welcome = (await w.next("welcome")) as Welcome;
    return w;
  }

  #deliver(m: Msg) {
    this.#frames.push(m);
    // A batch's messages join the inbox one by one, as the real worker's SessionClient reads them.
    if (m.case === "batch") for (const inner of m.value.messages) this.#inbox.push(inner.message);
    else this.#inbox.push(m);
    this.#notify();
  }

  /** Every message as it came on the wire (a batch as one), from welcome on. */
  get frames(): readonly Msg[] {
    return this.#frames;
  }

  #notify() {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  get ended(): boolean {
    return this.#ended;
  }

  get error(): unknown {
    return this.#error;
  }

  /** Messages received and not yet taken. */
  pending(): Msg[] {
    return [...this.#inbox];
  }

  send(message: MessageInitShape<typeof SessionRequestSchema>["message"]): void {
    // After close() a write is refused: the worker hung up, nothing more goes out.
    this.#out.write(create(SessionRequestSchema, { message })).catch(() => {});
  }

  /** The next message matching (removed from the inbox); rejects when the stream ends first. */
  async take(match: (m: Msg) => boolean): Promise<Msg> {
    for (;;) {
      const i = this.#inbox.findIndex(match);
      if (i >= 0) return this.#inbox.splice(i, 1)[0]!;
      if (this.#ended) throw new Error(`session ended before the expected message (${String(this.#error ?? "no error")})`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  async next(kind: NonNullable<Msg["case"]>): Promise<Msg["value"]> {
    return (await this.take((m) => m.case === kind)).value;
  }

  nextOffer(): Promise<Offer> {
    return this.next("offer") as Promise<Offer>;
  }

  nextCancel(): Promise<CancelOrder> {
    return this.next("cancel") as Promise<CancelOrder>;
  }

  /** The receipt for a job/lease. */
  async receipt(jobId: string, leaseId: string): Promise<Receipt> {
    return (await this.take((m) => m.case === "receipt" && m.value.jobId === jobId && m.value.leaseId === leaseId))
      .value as Receipt;
  }

  /** Streams one output in chunks and returns its digest. */
  upload(offer: Pick<Offer, "jobId" | "leaseId">, index: number, data: Uint8Array, opts: { mimeType?: string; sha256?: string; totalSize?: bigint; chunkBytes?: number } = {}): string {
    const sha256 = opts.sha256 ?? createHash("sha256").update(data).digest("hex");
    const chunk = opts.chunkBytes ?? 1024 * 1024;
    let offset = 0;
    do {
      const piece = data.subarray(offset, offset + chunk);
      this.send({
        case: "outputChunk",
        value: {
          jobId: offer.jobId,
          leaseId: offer.leaseId,
          index,
          mimeType: opts.mimeType ?? "image/png",
          totalSize: opts.totalSize ?? BigInt(data.byteLength),
          sha256,
          offset: BigInt(offset),
          data: piece,
        },
      });
      offset += piece.byteLength;
    } while (offset < data.byteLength);
    return sha256;
  }

  /** Sends complete and waits for its receipt. */
  async complete(offer: Pick<Offer, "jobId" | "leaseId">, outputCount = 1): Promise<Receipt> {
    this.send({ case: "complete", value: { jobId: offer.jobId, leaseId: offer.leaseId, outputCount } });
    return this.receipt(offer.jobId, offer.leaseId);
  }

  /** Sends complete with the outputs inline (index by position unless given) and waits for its receipt. */
  async completeInline(
    offer: Pick<Offer, "jobId" | "leaseId">,
    outputs: { data: Uint8Array; index?: number; mimeType?: string; sha256?: string }[],
    outputCount = outputs.length,
  ): Promise<Receipt> {
    this.send({
      case: "complete",
      value: {
        jobId: offer.jobId,
        leaseId: offer.leaseId,
        outputCount,
        outputs: outputs.map((o, i) => ({
          index: o.index ?? i,
          mimeType: o.mimeType ?? "image/png",
          data: o.data,
          sha256: o.sha256 ?? createHash("sha256").update(o.data).digest("hex"),
        })),
      },
    });
    return this.receipt(offer.jobId, offer.leaseId);
  }

  async fail(offer: Pick<Offer, "jobId" | "leaseId">, error: string, retryable = false): Promise<Receipt> {
    this.send({ case: "fail", value: { jobId: offer.jobId, leaseId: offer.leaseId, error, retryable } });
    return this.receipt(offer.jobId, offer.leaseId);
  }

  /** Ends the request side (the worker hangs up) and waits for the response side to end. */
  async close(): Promise<void> {
    this.#out.close();
    await this.done;
  }
}

export type { WorkerHello };

/** Waits until the studio has handled everything this worker sent so far (a refused fail's receipt comes back in order). */
export async function barrier(w: SimWorker): Promise<void> {
  const id = `barrier-${Math.random().toString(36).slice(2)}`;
  await w.fail({ jobId: id, leaseId: id }, "barrier");
}
