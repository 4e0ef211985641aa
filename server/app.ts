import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import { ServerConfigSchema, type ServerConfigInput } from "./config.js";
import type { RequestGate, StudioContext, StudioModule, StudioTuning } from "./context.js";
import { JobEvents } from "./events/job-events.js";
import { answerRefusalsAtOnce } from "./http/early-refusal.js";
import { createHttpFallback } from "./http/http-routes.js";
import { checkJsonEnumNames } from "./http/json-enum-names.js";
import { listen, type DualHandler, type Listener } from "./http/listener.js";
import { nodeRequestKey } from "./http/peer-context.js";
import { createLogger, type Logger } from "./log.js";
import { createModules } from "./modules.js";
import { openStorage } from "./storage/open-storage.js";

/** A running studio. */
export interface Studio {
  /** http://host:port (https:// with TLS). */
  url: string;
  port: number;
  ctx: StudioContext;
  modules: StudioModule[];
  /** Graceful: stop accepting, let in-flight requests and writes finish, stop loops, close the database. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  now?: () => number;
  tuning?: StudioTuning;
}

/** The largest single RPC message the studio reads; per-RPC limits are tighter where they matter. */
export const MAX_RPC_MESSAGE_BYTES = 8 * 1024 * 1024;

/** Opens the database, composes the modules and serves them on one port. */
export async function startStudio(input: ServerConfigInput, options: StartOptions = {}): Promise<Studio> {
  const config = ServerConfigSchema.parse(input);
  const logger = options.logger ?? createLogger(config.logLevel);
  const events = new JobEvents((err, change) =>
    logger.error({ err, jobId: change.jobId, status: change.status }, "a job event listener threw; the others still ran"),
  );
  const now = options.now ?? Date.now;
  const storage = await openStorage(config, { events, now, logger });
  const ctx: StudioContext = { config, storage, events, logger, now, tuning: options.tuning };
  // Other replicas' job changes join this one's bus (marked remote): watchers, placement and cancels see every replica.
  storage.cluster?.onJobChange((change) => events.publish(change));
  let modules: StudioModule[] = [];
  try {
    modules = createModules(ctx);
    for (const m of modules) await m.start?.();
  } catch (err) {
    for (const m of [...modules].reverse()) await m.stop?.();
    await storage.close();
    throw err;
  }

  const rpcHandler = connectNodeAdapter({
    routes: (router) => {
      const checked = checkJsonEnumNames(router);
      for (const m of modules) m.routes?.(checked);
    },
    interceptors: modules.flatMap((m) => m.interceptors ?? []),
    requestGate: answerRefusalsAtOnce(
      modules.reduceRight<RequestGate>((next, m) => (m.requestGate ? m.requestGate(next) : next), () => {}),
      { drainGraceMs: config.headersTimeoutMs },
    ),
    // The node request rides along so that a handler can find the peer's address (peerOf) when it needs it.
    contextValues: (req) => createContextValues().set(nodeRequestKey, req),
    readMaxBytes: MAX_RPC_MESSAGE_BYTES,
    fallback: createHttpFallback(modules.flatMap((m) => m.httpRoutes ?? [])),
  });
  const httpGates = modules.flatMap((m) => (m.httpGate ? [m.httpGate.bind(m)] : []));
  const handler: DualHandler = (req, res) => {
    for (const letThrough of httpGates) if (!letThrough(req, res)) return;
    rpcHandler(req, res);
  };

  let listener: Listener;
  try {
    listener = await listen({
      host: config.host,
      port: config.port,
      handler,
      headersTimeoutMs: config.headersTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      onRefused: (why) => {
        for (const m of modules) m.onConnectionRefused?.(why);
      },
      tls:
        config.tlsCert && config.tlsKey
          ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
          : undefined,
    });
  } catch (err) {
    for (const m of [...modules].reverse()) await m.stop?.();
    await storage.close();
    throw err;
  }

  const scheme = config.tlsCert ? "https" : "http";
  const urlHost = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `${scheme}://${urlHost}:${listener.port}`;
  logger.info(
    { url, dataDir: config.dataDir, database: storage.pg ? storage.pg.redactedUrl : "sqlite", replica: storage.cluster?.replicaId },
    "studio listening",
  );

  let stopping: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    ctx,
    modules,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        // Loops stop first so that no new offers go out while connections drain.
        for (const m of [...modules].reverse()) await m.stop?.();
        await listener.close(graceMs);
        await storage.close();
        logger.info("studio stopped");
      })();
      return stopping;
    },
  };
}
