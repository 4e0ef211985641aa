import { create } from "@bufbuild/protobuf";
import { CreateJobRequestSchema } from "../../gen/studio/v1/job_service_pb.js";
import type { EngineName } from "../../contract/names.js";
import type { StudioContext, StudioModule } from "../context.js";
import type { DispatchModule } from "../dispatch/index.js";
import type { JobsModule } from "../jobs/index.js";
import { outputsFromJson, type JobRow } from "../jobs/job-row.js";
import type { TextFeed } from "../streams/text-feed.js";
import type { OpenAiDeps } from "./api-deps.js";
import { openAiRoutes } from "./routes.js";

export { OpenAiError } from "./openai-errors.js";

/**
 * The OpenAI-compatible API (GET /v1/models, POST /v1/chat/completions, /v1/completions,
 * /v1/images/generations) on the studio's port: each request is a job in the one queue, created
 * the way CreateJob creates it, so WatchJobs, the web page and the CLI see it like any other.
 */
export function createOpenAiModule(ctx: StudioContext, parts: { jobs: JobsModule; dispatch: DispatchModule; texts?: TextFeed }): StudioModule {
  const { jobs, dispatch } = parts;
  const logger = ctx.logger.child({ module: "openai" });
  const deps: OpenAiDeps = {
    registry: ctx.storage.registry,
    createJob: async ({ model, task }) => (await jobs.createJob(create(CreateJobRequestSchema, { model, task }))).row,
    cancelJob: async (jobId) => void (await jobs.store.cancel(jobId)),
    getJob: (id) => jobs.store.get(id),
    async readOutput(row, index) {
      const output = outputsFromJson(row.outputs).find((o) => o.index === index);
      if (!output) throw new Error(`job ${row.id} (${row.status}) has no output ${index}`);
      const parts: Uint8Array[] = [];
      for await (const chunk of dispatch.outputs.openRead(output.sha256)) parts.push(chunk);
      return { mimeType: output.mimeType, data: Buffer.concat(parts) };
    },
    events: ctx.events,
    texts: parts.texts,
    waitMs: ctx.config.openaiWaitMs,
    describeWait: async (row) => describeWait(dispatch, row, ctx.storage.cluster !== undefined),
    logger,
    scheme: ctx.config.tlsCert ? "https" : "http",
  };
  return { name: "openai", httpRoutes: openAiRoutes(deps) };
}

/** Why no worker on this replica took a queued job: none runs its engine, all are busy, or some had room and still did not. */
function describeWait(dispatch: DispatchModule, row: JobRow, replicas: boolean): string | undefined {
  const engine = row.engine as EngineName | null;
  if (!engine) return undefined;
  const here = replicas ? " connected to this replica" : "";
  const able = dispatch.registry.all().filter((w) => w.engines.has(engine));
  if (able.length === 0) return `no worker${here} runs ${engine}`;
  const open = able.filter((w) => !w.draining && w.leases.size < w.slots);
  if (open.length === 0) return `the ${able.length} worker(s)${here} that run ${engine} are busy or draining`;
  return `${open.length} worker(s)${here} that run ${engine} had a free slot but did not take it (they may have declined it)`;
}
