import { TransferFailure } from "./errors.js";
import type { FileDownloadPlan } from "./file-download.js";
import { contentLength, fetchFollowing, ifRangeValidator, parseContentRange } from "./http-fetch.js";
import type { PartialFile } from "./partial-file.js";
import { splitParts, type PartState, type PartialState } from "./partial-state.js";

/** Thrown inside an attempt when the server cannot continue the partial (200 to a Range, changed size). */
export class RestartFromZero extends Error {}

/** First request: `Range: bytes=0-` tells in one round trip whether ranges work and how big the file is. */
export async function openFresh(plan: FileDownloadPlan, file: PartialFile, signal: AbortSignal) {
  let response: Response;
  try {
    ({ response } = await fetchFollowing(plan.url, { range: "bytes=0-" }, plan.policy, signal));
  } catch (err) {
    // An empty file cannot satisfy "bytes=0-": ask again for the whole thing.
    if (!(err instanceof TransferFailure && err.init.status === 416)) throw err;
    ({ response } = await fetchFollowing(plan.url, {}, plan.policy, signal));
  }
  const range = response.status === 206 ? parseContentRange(response.headers.get("content-range")) : undefined;
  const acceptsRanges = range !== undefined && range.start === 0 && range.total !== undefined;
  const totalBytes = acceptsRanges ? range.total : contentLength(response);
  try {
    await plan.ensureSpace(totalBytes ?? plan.approxBytes ?? 0);
  } catch (err) {
    await response.body?.cancel().catch(() => {});
    throw err;
  }
  const parallel = acceptsRanges && totalBytes! >= plan.partThresholdBytes && plan.parts > 1;
  const parts = totalBytes === undefined ? [{ start: 0, next: 0 }] : parallel ? splitParts(totalBytes, plan.parts) : [{ start: 0, end: totalBytes, next: 0 }];
  if (parallel) await file.truncate(totalBytes!);
  const state: PartialState = {
    version: 1,
    url: plan.url,
    etag: response.headers.get("etag") ?? undefined,
    lastModified: response.headers.get("last-modified") ?? undefined,
    totalBytes,
    acceptsRanges,
    parts,
  };
  if (!response.body) throw new TransferFailure({ kind: "network", retryable: true, message: "response has no body" });
  return { state, body: response.body };
}

/** A resumed range: 206 at the right offset continues; 200, or a different size, means start over. */
export async function openRange(plan: FileDownloadPlan, state: PartialState, part: PartState, signal: AbortSignal) {
  const headers: Record<string, string> = { range: `bytes=${part.next}-${part.end !== undefined ? part.end - 1 : ""}` };
  const validator = ifRangeValidator(state.etag, state.lastModified);
  if (validator) headers["if-range"] = validator;
  const { response } = await fetchFollowing(plan.url, headers, plan.policy, signal);
  const range = parseContentRange(response.headers.get("content-range"));
  const ok = response.status === 206 && range?.start === part.next && (state.totalBytes === undefined || range.total === state.totalBytes);
  if (!ok || !response.body) {
    await response.body?.cancel().catch(() => {});
    throw new RestartFromZero(`server answered ${response.status} ${response.headers.get("content-range") ?? ""} to a resume at byte ${part.next}`);
  }
  return response.body;
}

