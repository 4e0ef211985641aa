import { createHash } from "node:crypto";
import type { ImageTask, TextTask } from "../../gen/studio/v1/job_pb.js";
import { encodePng } from "./png.js";
import type { TextResult } from "./text-output.js";

/** sd-cli's defaults, which the synthetic engine mirrors where neither source nor task sets a value. */
export const SYNTHETIC_DEFAULTS = { width: 512, height: 512, steps: 4, seed: 42n } as const;

function seededRandom(parts: string[]): () => number {
  const digest = createHash("sha256").update(parts.join("\u0000")).digest();
  let state = digest.readUInt32LE(0) || 1;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The deterministic PNG the synthetic engine produces for a task and batch index: a seeded two-colour
 * gradient with a little noise, of the requested size. Same inputs, same bytes (chaos tests compare them).
 */
export function syntheticImage(task: ImageTask, settings: { width: number; height: number }, index: number): Uint8Array {
  const { width, height } = settings;
  const seed = task.seed ?? SYNTHETIC_DEFAULTS.seed;
  const random = seededRandom([task.prompt, task.negativePrompt, String(seed), String(index), String(width), String(height)]);
  const a = [random() * 255, random() * 255, random() * 255];
  const b = [random() * 255, random() * 255, random() * 255];
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x / Math.max(1, width - 1) + y / Math.max(1, height - 1)) / 2;
      const noise = (random() - 0.5) * 24;
      const at = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) rgb[at + c] = Math.max(0, Math.min(255, Math.round(a[c]! * (1 - t) + b[c]! * t + noise)));
    }
  }
  return encodePng(width, height, rgb);
}

const WORDS = ["amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kelp", "lumen"];

/** The deterministic text result the synthetic engine returns for a text task (same shape as llama-server's). */
export function syntheticText(task: TextTask): TextResult {
  const input = task.prompt !== "" ? task.prompt : task.messages.map((m) => `${m.role}: ${m.content}`).join("\n");
  const random = seededRandom([input, String(task.seed ?? SYNTHETIC_DEFAULTS.seed)]);
  const wanted = 12;
  const limit = task.maxTokens ?? wanted;
  const count = Math.min(wanted, limit);
  const words = Array.from({ length: count }, () => WORDS[Math.floor(random() * WORDS.length)]!);
  return {
    text: words.join(" "),
    finishReason: count < wanted ? "length" : "stop",
    usage: { promptTokens: input.split(/\s+/).filter(Boolean).length, completionTokens: count },
  };
}
