import { create } from "@bufbuild/protobuf";
import { ModelEngine, VramRequirementSchema, type ModelSource, type VramRequirement } from "../gen/studio/v1/model_pb.js";
import { formatBytes } from "./byte-size.js";

/**
 * What the estimate adds to the files' summed approxBytes, for what an engine allocates beyond its
 * weights (llama.cpp's KV cache and compute buffers, stable-diffusion.cpp's activations): a fifth of
 * the sum, plus a fixed 512 MiB for the backend's own context. It is a rule of thumb, said to be one
 * wherever it is shown: a model with a long context or large images states its vramBytes.
 */
export const VRAM_ESTIMATE = { marginFraction: 0.2, fixedBytes: 512 * 1024 ** 2 } as const;

/** What placement counts for a job: bytes of GPU memory, and whether they are the studio's estimate. */
export interface VramNeed {
  bytes: number;
  estimated: boolean;
}

/**
 * The GPU memory one job of a source needs: the source's vramBytes when it states one, else an
 * estimate from its files' approxBytes (their sum, plus VRAM_ESTIMATE's margin). Undefined when
 * the source runs on no GPU (synthetic) or nothing can be estimated (no file states approxBytes):
 * placement then checks no GPU memory for it.
 */
export function vramNeedOf(source: ModelSource | undefined): VramNeed | undefined {
  if (!source || source.engine === ModelEngine.SYNTHETIC || source.engine === ModelEngine.UNSPECIFIED) return undefined;
  if (source.vramBytes !== undefined && source.vramBytes > 0n) return { bytes: Number(source.vramBytes), estimated: false };
  let sum = 0;
  let known = false;
  for (const f of source.files)
    if (f.approxBytes !== undefined) {
      sum += Number(f.approxBytes);
      known = true;
    }
  if (!known) return undefined;
  return { bytes: estimateFromFiles(sum), estimated: true };
}

/** The estimate for files of `sum` bytes in all. Integer arithmetic, so that the SQL backfill of migrations computes the same. */
export function estimateFromFiles(sum: number): number {
  return sum + Math.ceil(sum / 5) + VRAM_ESTIMATE.fixedBytes;
}

/**
 * A need for people: "8.1 GiB of GPU memory (estimated from the files' approxBytes plus 20% and 512 MiB)"
 * or "8.0 GiB of GPU memory (the source's vramBytes)".
 */
export function describeVramNeed(need: VramNeed): string {
  return `${formatBytes(need.bytes)} of GPU memory (${need.estimated ? "estimated from the files' approxBytes plus 20% and 512 MiB" : "the source's vramBytes"})`;
}

/** The need as Job.vram and Model.vram carry it; undefined when none is counted. */
export function vramRequirementOf(source: ModelSource | undefined): VramRequirement | undefined {
  const need = vramNeedOf(source);
  return need && create(VramRequirementSchema, { bytes: BigInt(need.bytes), estimated: need.estimated });
}
