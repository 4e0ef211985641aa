import type * as http from "node:http";
import { IMAGE_OUTPUT_TYPES } from "../../contract/task.js";
import { Readable } from "node:stream";
import type { JobRow } from "../jobs/job-row.js";
import { sendText, type HttpRoute } from "../http/http-routes.js";
import { OutputError } from "./output-error.js";
import { findJobOutput } from "./job-output-reader.js";
import type { OutputStore } from "./output-store.js";

/** Outputs a browser may show in place: the raster image types image jobs upload (never SVG, which can hold script). */
const INLINE_TYPES = IMAGE_OUTPUT_TYPES;

/**
 * `GET /jobs/{id}/outputs/{index}` for browsers and curl: the stored bytes with
 * the output's Content-Type, Content-Length, and its sha256 as a strong ETag
 * (answering If-None-Match with 304). HEAD gets the headers only. Every answer carries
 * `Content-Security-Policy: sandbox`, and anything but a raster image is an attachment, so
 * that an output (stored before uploads were restricted, or by a hostile worker) cannot run
 * script on the studio's origin.
 */
export function outputHttpRoute(getJob: (id: string) => Promise<JobRow | undefined>, outputs: OutputStore): HttpRoute {
  return {
    method: "GET",
    path: /^\/jobs\/(?<id>[^/]{1,200})\/outputs\/(?<index>\d{1,7})$/,
    async handle(req, res, params) {
      let jobId: string;
      try {
        jobId = decodeURIComponent(params.id!);
      } catch {
        return sendText(res, 400, "job id is not valid percent-encoding\n");
      }
      let output;
      try {
        output = await findJobOutput(getJob, outputs, jobId, Number(params.index));
      } catch (err) {
        if (err instanceof OutputError) return sendText(res, err.code === "not_found" ? 404 : 400, `${err.message}\n`);
        throw err;
      }
      const etag = `"${output.sha256}"`;
      const headers: Record<string, string> = {
        "content-type": output.mimeType,
        "content-length": String(output.sizeBytes),
        etag,
        "cache-control": "private, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
        // Bytes a worker produced, served from the studio's own origin: never a document that runs script here.
        "content-security-policy": "sandbox",
      };
      if (!INLINE_TYPES.has(output.mimeType)) headers["content-disposition"] = `attachment; filename="${jobId.replace(/[^A-Za-z0-9._-]/g, "_")}-${params.index}"`;
      const w = res as http.ServerResponse;
      if (req.headers["if-none-match"] === etag) {
        w.writeHead(304, { etag });
        return void w.end();
      }
      w.writeHead(200, headers);
      if (req.method === "HEAD") return void w.end();
      const stream = Readable.from(outputs.openRead(output.sha256), { objectMode: false });
      stream.on("error", () => w.destroy());
      w.on("close", () => stream.destroy());
      stream.pipe(w);
    },
  };
}
