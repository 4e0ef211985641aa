import { imageSize } from "./image-size.js";
import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { JobOutputSchema } from "../../gen/studio/v1/job_pb.js";
import type { OutputData } from "../../gen/studio/v1/worker_service_pb.js";
import { checkMimeType } from "./mime-type.js";
import { OutputError } from "./output-error.js";
import type { StagedOutput } from "./output-staging.js";
import type { OutputStore } from "./output-store.js";

/**
 * Checks whole outputs sent inline (the polling API's CompleteJob, a session's JobComplete):
 * each index once and below the count the complete names, a bare mime type, the bytes within the
 * store's size limit and hashing to the sha256 sent with them. Nothing is stored: the complete's
 * commit moves them into the store. QueueActions.complete checks the count against the task.
 */
export function verifyInlineOutputs(list: readonly OutputData[], outputCount: number, store: OutputStore): Map<number, StagedOutput> {
  // The cheap checks first, the hashing after.
  const seen = new Set<number>();
  for (const o of list) {
    if (o.index >= outputCount)
      throw new OutputError("invalid_argument", `output index ${o.index} is out of range: the complete names ${outputCount} output(s)`);
    if (seen.has(o.index)) throw new OutputError("invalid_argument", `output index ${o.index} is sent twice`);
    seen.add(o.index);
    checkMimeType(o.mimeType);
  }
  const received = new Map<number, StagedOutput>();
  for (const o of list) {
    if (o.data.byteLength > store.maxOutputBytes)
      throw new OutputError(
        "resource_exhausted",
        `output ${o.index} of ${o.data.byteLength} bytes is over the studio's limit of ${store.maxOutputBytes} bytes`,
      );
    const actual = createHash("sha256").update(o.data).digest("hex");
    if (o.sha256 !== actual)
      throw new OutputError("invalid_argument", `outputs[${o.index}].sha256 is ${JSON.stringify(o.sha256)}, the bytes hash to ${actual}`);
    received.set(o.index, {
      meta: create(JobOutputSchema, { index: o.index, mimeType: o.mimeType, sizeBytes: BigInt(o.data.byteLength), sha256: actual, ...imageSize(o.mimeType, o.data) }),
      verified: { sha256: actual, size: o.data.byteLength, bytes: o.data },
    });
  }
  return received;
}
