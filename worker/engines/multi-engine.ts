import { engineName } from "../../contract/index.js";
import type { ModelEngine, ModelSource } from "../../gen/studio/v1/model_pb.js";
import { EngineError } from "./engine-error.js";
import type { Engine } from "./types.js";

/**
 * Routes a job to the one engine its source names. Strict by design: no wildcard and no fallback,
 * because a catch-all placeholder engine once answered about 150 real jobs with synthetic bytes.
 */
export class MultiEngine {
  readonly kinds: ModelEngine[];
  private readonly byKind = new Map<ModelEngine, Engine>();

  constructor(engines: Engine[]) {
    for (const engine of engines) {
      if (this.byKind.has(engine.kind)) throw new Error(`two engines for ${engineName(engine.kind) ?? engine.kind}`);
      this.byKind.set(engine.kind, engine);
    }
    this.kinds = [...this.byKind.keys()];
  }

  /**
   * The engine for a source. Throws EngineError("no-source") when the offer carried no source, and
   * EngineError("unavailable") when this worker lacks the source's engine (the worker declines).
   */
  route(model: string, source: ModelSource | undefined): Engine {
    if (!source)
      throw new EngineError("no-source", `the studio's registry has no model source for model "${model}"`);
    const engine = this.byKind.get(source.engine);
    if (!engine) {
      const name = engineName(source.engine) ?? `unknown engine ${source.engine}`;
      const have = this.kinds.map((k) => engineName(k) ?? String(k)).join(", ") || "none";
      throw new EngineError("unavailable", `this worker has no ${name} engine for model "${model}" (it has: ${have})`);
    }
    return engine;
  }

  /** Closes every engine, even when one of them fails to close. */
  async close(): Promise<void> {
    const results = await Promise.allSettled([...this.byKind.values()].map((e) => e.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }
}
