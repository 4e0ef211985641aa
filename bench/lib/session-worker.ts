#!/usr/bin/env bun
/**
 * A process of simulated Studio workers for the benchmarks: `--sessions` WorkerService.Session
 * streams over HTTP/2, each kept by the real worker's SessionClient (hello, welcome, heartbeats
 * on the studio's interval), each with one slot. An offer is answered the way the real runtime
 * answers it (no accept; the output inline in the complete, or in chunks before it to a studio
 * that takes none inline) but with a fixed 1 KiB PNG instead of running an engine, so that what
 * is measured is dispatch, not image making.
 *
 * Records when each offer arrived and when the studio's receipt confirmed the completion, and
 * reports them over IPC (see worker-messages.ts).
 */
import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import pino from "pino";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import {
  JobCompleteSchema,
  JobDeclineSchema,
  OutputChunkSchema,
  OutputDataSchema,
  WorkerHelloSchema,
} from "../../gen/studio/v1/worker_service_pb.js";
import type { Offer } from "../../gen/studio/v1/job_pb.js";
import { SessionClient, type LiveSession } from "../../worker/session/session-client.js";
import { createWorkerTransport } from "../../worker/session/transport.js";
import { OUTPUT_BYTES, paddedPng } from "./payload.js";
import { epochMs } from "./stats.js";
import { ReceiptLog, toParent } from "./worker-messages.js";
import { exitWithParent } from "./child.js";

exitWithParent();

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    sessions: { type: "string", default: "1" },
    "per-connection": { type: "string", default: "1" },
    name: { type: "string", default: `bench-${process.pid}` },
  },
});
if (!args.url) {
  console.error("usage: session-worker.ts --url URL [--sessions N] [--per-connection K] [--name PREFIX]");
  process.exit(2);
}
const sessions = Number(args.sessions);
const perConnection = Math.max(1, Number(args["per-connection"]));

const output = paddedPng();
const outputSha = createHash("sha256").update(output).digest("hex");
const log = new ReceiptLog(toParent);
log.listen();
const silent = pino({ level: "silent" });

/** One simulated worker: its SessionClient and the offer it holds (one slot). */
class BenchWorker {
  readonly client: SessionClient;
  private held: Offer | undefined;
  welcomed = false;

  constructor(
    transport: Transport,
    private readonly name: string,
    onWelcome: () => void,
  ) {
    this.client = new SessionClient({
      transport,
      logger: silent,
      handlers: {
        hello: () =>
          create(WorkerHelloSchema, { name, version: "bench", engines: [ModelEngine.SYNTHETIC], slots: 1 }),
        leaseIds: () => (this.held ? [this.held.leaseId] : []),
        welcome: () => {
          if (!this.welcomed) onWelcome();
          this.welcomed = true;
        },
        message: (m, session) => {
          if (m.case === "offer") this.offer(m.value, session);
          else if (m.case === "receipt") {
            if (!m.value.ok) toParent({ type: "error", message: `${name}: ${m.value.code} ${m.value.message} (job ${m.value.jobId})` });
            // The one receipt a job gets answers its complete (a refused chunk's comes first and is reported above).
            if (this.held && m.value.jobId === this.held.jobId) {
              log.complete(this.held.jobId, epochMs());
              this.held = undefined;
            }
          } else if (m.case === "cancel" && this.held?.jobId === m.value.jobId) this.held = undefined;
        },
        closed: (_s, err) => {
          if (err) toParent({ type: "error", message: `${name}: session ended: ${err.message}` });
        },
      },
    });
  }

  private offer(offer: Offer, session: LiveSession): void {
    if (this.held) {
      // One slot: decline as the real worker does, and say so, since the studio should not have offered it.
      const reason = `no free slot (holding job ${this.held.jobId})`;
      session.post({ case: "decline", value: create(JobDeclineSchema, { jobId: offer.jobId, leaseId: offer.leaseId, reason }) });
      toParent({ type: "error", message: `${this.name}: offered job ${offer.jobId} while holding ${this.held.jobId} (1 slot); declined` });
      return;
    }
    log.receive(offer.jobId, epochMs());
    this.held = offer;
    const ids = { jobId: offer.jobId, leaseId: offer.leaseId };
    // As the real runtime does: no accept (the offer is the lease), the output inline in the
    // complete when the studio takes it inline, else one chunk and then the complete.
    if (OUTPUT_BYTES <= session.welcome.maxInlineOutputBytes) {
      const inline = create(OutputDataSchema, { index: 0, mimeType: "image/png", data: output, sha256: outputSha });
      session.post({ case: "complete", value: create(JobCompleteSchema, { ...ids, outputCount: 1, outputs: [inline] }) });
      return;
    }
    session.post({
      case: "outputChunk",
      value: create(OutputChunkSchema, {
        ...ids,
        index: 0,
        mimeType: "image/png",
        totalSize: BigInt(OUTPUT_BYTES),
        sha256: outputSha,
        offset: 0n,
        data: output,
      }),
    });
    session.post({ case: "complete", value: create(JobCompleteSchema, { ...ids, outputCount: 1 }) });
  }
}

let transport: Transport | undefined;
let welcomed = 0;
const workers: BenchWorker[] = [];
const allWelcomed = Promise.withResolvers<void>();
for (let i = 0; i < sessions; i++) {
  if (i % perConnection === 0) transport = createWorkerTransport(args.url);
  const w = new BenchWorker(transport!, `${args.name}-${i}`, () => {
    if (++welcomed === sessions) allWelcomed.resolve();
  });
  workers.push(w);
  void w.client.run().catch((err: unknown) => toParent({ type: "error", message: String(err) }));
}
await allWelcomed.promise;
toParent({ type: "ready", sessions });

const shutdown = async () => {
  await Promise.all(workers.map((w) => w.client.stop(1000)));
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
