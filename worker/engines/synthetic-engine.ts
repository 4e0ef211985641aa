import { effectiveCliSettings, expectedOutputCount } from "../../contract/index.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { EngineError } from "./engine-error.js";
import { SYNTHETIC_DEFAULTS, syntheticImage, syntheticText } from "./synthetic.js";
import { textOutput } from "./text-output.js";
import type { Engine, EngineOutput, EngineRunRequest } from "./types.js";

/**
 * Deterministic placeholder output for demos, tests and benchmarks. It refuses any source whose
 * engine is not SYNTHETIC, so that it can never answer a real model's job with placeholder bytes.
 */
export class SyntheticEngine implements Engine {
  readonly kind = ModelEngine.SYNTHETIC;
  private readonly stepDelayMs: number;

  constructor({ stepDelayMs = 0 }: { stepDelayMs?: number } = {}) {
    this.stepDelayMs = stepDelayMs;
  }

  async run(req: EngineRunRequest): Promise<EngineOutput[]> {
    if (req.source.engine !== ModelEngine.SYNTHETIC)
      throw new EngineError("unavailable", `the synthetic engine only runs synthetic sources (got engine ${ModelEngine[req.source.engine]})`);
    const deadline = req.timeoutMs === undefined ? Infinity : Date.now() + req.timeoutMs;
    const kind = req.task.kind;
    if (kind.case === "image") {
      const settings = effectiveCliSettings(req.source.cliDefaults, kind.value.overrides);
      const steps = settings.steps ?? SYNTHETIC_DEFAULTS.steps;
      const width = settings.width ?? SYNTHETIC_DEFAULTS.width;
      const height = settings.height ?? SYNTHETIC_DEFAULTS.height;
      const count = expectedOutputCount(req.task);
      const outputs: EngineOutput[] = [];
      for (let i = 0; i < count; i++) {
        for (let step = 1; step <= steps; step++) {
          await this.pause(req.signal, deadline);
          req.onProgress({ phase: "running", step, steps, message: `image ${i + 1}/${count}: step ${step}/${steps}` });
        }
        outputs.push({ mimeType: "image/png", data: syntheticImage(kind.value, { width, height }, i) });
      }
      return outputs;
    }
    if (kind.case === "text") {
      const result = syntheticText(kind.value);
      // One word a token, streamed as it is "produced" (a step apart), as llama-server streams its tokens.
      const words = result.text.split(" ");
      for (let i = 1; i <= words.length; i++) {
        await this.pause(req.signal, deadline);
        req.onText?.({ kind: "text", content: i === 1 ? words[0]! : ` ${words[i - 1]}`, tokens: i });
        req.onProgress({ phase: "running", step: i, message: `${i} tokens` });
      }
      return [textOutput(result)];
    }
    throw new EngineError("failed", "the task sets neither image nor text");
  }

  async close(): Promise<void> {}

  private async pause(signal: AbortSignal, deadline: number): Promise<void> {
    if (signal.aborted) throw new EngineError("cancelled", "the job was cancelled");
    if (Date.now() > deadline) throw new EngineError("timeout", "the job timed out");
    if (this.stepDelayMs > 0) await Bun.sleep(this.stepDelayMs);
    if (signal.aborted) throw new EngineError("cancelled", "the job was cancelled");
  }
}
