/**
 * The worker's engines: strict routing by `source.engine` (MultiEngine) to sd-cli, llama-server or
 * the synthetic engine. The session hands each job to `multi.route(model, source).run(request)`.
 */
export type { Engine, EngineFile, EngineLogger, EngineOutput, EngineProgress, EngineRunRequest } from "./types.js";
export { EngineError, type EngineErrorKind } from "./engine-error.js";
export { MultiEngine } from "./multi-engine.js";
export { SdCliEngine, type SdCliEngineOptions } from "./sd-cli-engine.js";
export { sdCliArgs, sdOutputPaths, SD_OUTPUT_NAME } from "./sd-cli-args.js";
export { LlamaServerEngine, type LlamaServerEngineOptions } from "./llama-server-engine.js";
export { LlamaProcess } from "./llama-process.js";
export { LLAMA_TRANSITIONS, IllegalTransitionError, nextLlamaState, type LlamaState } from "./llama-state.js";
export { SyntheticEngine } from "./synthetic-engine.js";
export { syntheticImage, syntheticText } from "./synthetic.js";
export { TEXT_OUTPUT_MIME, textOutput, type TextResult } from "./text-output.js";
export { encodePng, pngProblem } from "./png.js";
