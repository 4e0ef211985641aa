import type { StudioContext, StudioModule } from "../context.js";
import { ClusterTextBus } from "./cluster-text-bus.js";
import { TextStreams } from "./text-streams.js";

export type { TextFeed } from "./text-feed.js";
export { TextStreams } from "./text-streams.js";

/** The streams module: text jobs' output as it streams, for sessions (in), watchers and the OpenAI API (out). */
export interface StreamsModule extends StudioModule {
  texts: TextStreams;
}

/**
 * Streamed text for every part that needs it: dispatch's sessions hand pieces in, WatchJobs,
 * GetJob and the OpenAI API read them; with several replicas they travel between them on the
 * cluster's notifications. Placed before dispatch so that it stops after the sessions have
 * (modules stop in reverse), writing what they sent last.
 */
export function createStreamsModule(ctx: StudioContext): StreamsModule {
  const logger = ctx.logger.child({ module: "streams" });
  const cluster = ctx.storage.cluster;
  const texts = new TextStreams({
    events: ctx.events,
    store: ctx.storage.texts,
    bus: cluster && new ClusterTextBus(cluster, logger),
    logger,
    now: ctx.now,
  });
  return {
    name: "streams",
    texts,
    start: () => texts.start(),
    stop: () => texts.stop(),
  };
}
