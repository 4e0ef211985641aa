import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { OutputChunkSchema, type OutputChunk } from "../../gen/studio/v1/worker_service_pb.js";

/** The largest chunk the studio takes (issue 4: at most 1 MiB each). */
export const MAX_CHUNK_BYTES = 1024 * 1024;

/**
 * Splits one output into the in-order chunks of the session contract: each carries the index,
 * mime type, total size and sha256 of the whole output, and its offset; an empty output is one
 * empty chunk so the studio still learns its digest.
 */
export function* outputChunks(
  ids: { jobId: string; leaseId: string },
  index: number,
  mimeType: string,
  data: Uint8Array,
  chunkBytes = MAX_CHUNK_BYTES,
): Generator<OutputChunk> {
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new RangeError(`chunk size ${chunkBytes} out of range`);
  const sha256 = createHash("sha256").update(data).digest("hex");
  const totalSize = BigInt(data.byteLength);
  let offset = 0;
  do {
    const end = Math.min(data.byteLength, offset + chunkBytes);
    yield create(OutputChunkSchema, {
      ...ids,
      index,
      mimeType,
      totalSize,
      sha256,
      offset: BigInt(offset),
      data: data.subarray(offset, end),
    });
    offset = end;
  } while (offset < data.byteLength);
}
