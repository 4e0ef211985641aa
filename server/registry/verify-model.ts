import { create } from "@bufbuild/protobuf";
import type { ModelSource } from "../../gen/studio/v1/model_pb.js";
import {
  FileCheckSchema,
  VerifyModelResponseSchema,
  type FileCheck,
  type VerifyModelResponse,
} from "../../gen/studio/v1/registry_service_pb.js";
import { checkUrl, type UrlCheckOptions } from "./verify-url.js";

/** How many URLs of one source are checked at once. */
export const VERIFY_CONCURRENCY = 4;

/**
 * Checks every file of a (validated) source: reachability, final URL, and the
 * size the server reports against approx_bytes. ok is true when every file is reachable.
 */
export async function verifySource(source: ModelSource, options: UrlCheckOptions): Promise<VerifyModelResponse> {
  const files: FileCheck[] = new Array(source.files.length);
  let next = 0;
  const worker = async () => {
    while (next < source.files.length) {
      const i = next++;
      const file = source.files[i]!;
      const found = await checkUrl(file.url, options);
      const sizeMatches =
        file.approxBytes === undefined || (found.sizeBytes !== undefined && found.sizeBytes === file.approxBytes);
      let error = found.error;
      if (found.reachable && !sizeMatches)
        error =
          found.sizeBytes === undefined
            ? "the server did not say the size"
            : `size ${found.sizeBytes} differs from approx_bytes ${file.approxBytes}`;
      files[i] = create(FileCheckSchema, {
        filename: file.filename,
        url: file.url,
        reachable: found.reachable,
        httpStatus: found.httpStatus,
        finalUrl: found.finalUrl,
        sizeBytes: found.sizeBytes,
        approxBytes: file.approxBytes,
        sizeMatches,
        error,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(VERIFY_CONCURRENCY, source.files.length) }, worker));
  return create(VerifyModelResponseSchema, { files, ok: files.every((f) => f.reachable) });
}
