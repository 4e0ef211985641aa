/**
 * The contract helpers the studio, the worker, the CLI and the web page share:
 * the ModelSource wire JSON, its validation rules, and task rules.
 */
export * from "./names.js";
export * from "./issues.js";
export * from "./model-source.js";
export * from "./task.js";
export * from "./hex.js";
export * from "./model-doc.js";
export * from "./byte-size.js";
export * from "./http-url.js";
export * from "./backoff.js";
export * from "./job-progress.js";
export * from "./worker-limits.js";
export * from "./lora-tags.js";
export * from "./text-output.js";
export * from "./output-files.js";
export * from "./vram.js";
export * from "./gpus.js";
