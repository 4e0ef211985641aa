import { TEXT_OUTPUT_MIME, encodeTextOutput, type TextOutput } from "../../contract/text-output.js";
import type { EngineOutput } from "./types.js";

export { TEXT_OUTPUT_MIME };

/** The result of a text task: contract/text-output.ts documents its shape. */
export type TextResult = TextOutput;

/** The one output of a text job. */
export function textOutput(result: TextResult): EngineOutput {
  return { mimeType: TEXT_OUTPUT_MIME, data: encodeTextOutput(result) };
}
