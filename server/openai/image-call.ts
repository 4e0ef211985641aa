import { sendJson, type HttpRequest, type HttpResponse } from "../http/http-routes.js";
import { outputsFromJson, type JobRow } from "../jobs/job-row.js";
import type { OpenAiDeps } from "./api-deps.js";
import { cancelQuietly, jobEndedError, onClientGone, unclaimedError } from "./job-call.js";
import { followJob } from "./job-follower.js";
import { OpenAiError, sendOpenAiError } from "./openai-errors.js";
import type { ImageRequest } from "./image-request.js";

/**
 * One images request whose job is queued: waits for a worker to take it (503 after the wait) and
 * for it to end, then answers OpenAI's `{created, data: [{url} | {b64_json}]}`. A URL names the
 * studio's output route (GET /jobs/{id}/outputs/{index}, which needs the same bearer token). A
 * client that goes away cancels the job.
 */
export function runImageCall(req: HttpRequest, res: HttpResponse, request: ImageRequest, row: JobRow, deps: OpenAiDeps): Promise<void> {
  return new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      finished = true;
      follower.stop();
      resolve();
    };
    const fail = (err: unknown) => {
      if (finished) return;
      if (!(err instanceof OpenAiError)) deps.logger.error({ jobId: row.id, err }, "OpenAI API: following the job failed");
      const answer =
        err instanceof OpenAiError
          ? err
          : new OpenAiError(500, "server_error", `following job ${row.id} failed: ${err instanceof Error ? err.message : String(err)}`, "internal_error");
      finished = true;
      sendOpenAiError(res, answer);
      finish();
    };
    const follower = followJob(
      row.id,
      { events: deps.events, getJob: deps.getJob, waitMs: deps.waitMs },
      {
        ended: (ended) => {
          if (finished) return;
          if (ended.status !== "SUCCEEDED") return fail(jobEndedError(ended));
          imagesBody(req, ended, request, deps).then((body) => {
            if (finished) return;
            finished = true;
            sendJson(res, 200, body);
            finish();
          }, fail);
        },
        unclaimed: (waited) => {
          if (finished) return;
          // Stop listening first: the cancel's own CANCELLED event must not answer in place of the 503.
          follower.stop();
          unclaimedError(deps, row, waited).then((err) => {
            cancelQuietly(deps, row.id, `no worker took it within ${waited} ms`);
            fail(err);
          }, fail);
        },
        failed: fail,
      },
    );
    onClientGone(res, () => finished, () => {
      finish();
      cancelQuietly(deps, row.id, "the client went away before the images were ready");
    });
  });
}

async function imagesBody(req: HttpRequest, row: JobRow, request: ImageRequest, deps: OpenAiDeps) {
  const outputs = outputsFromJson(row.outputs).filter((o) => o.mimeType.startsWith("image/")).sort((a, b) => a.index - b.index);
  const data: Array<{ url: string } | { b64_json: string }> = [];
  for (const output of outputs) {
    if (request.responseFormat === "url") data.push({ url: `${baseUrl(req, deps)}/jobs/${encodeURIComponent(row.id)}/outputs/${output.index}` });
    else data.push({ b64_json: Buffer.from((await deps.readOutput(row, output.index)).data).toString("base64") });
  }
  return { created: Math.floor(row.createdAt / 1000), data };
}

/** A host name or address with an optional port; anything else in a Host header is not put into a URL. */
const HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

/** The studio as the client reached it: its own scheme (or a proxy's X-Forwarded-Proto) and the Host it named. */
function baseUrl(req: HttpRequest, deps: OpenAiDeps): string {
  const forwarded = String(req.headers["x-forwarded-proto"] ?? "").toLowerCase();
  const scheme = forwarded === "https" || forwarded === "http" ? forwarded : deps.scheme;
  const host = String(req.headers[":authority"] ?? req.headers.host ?? "");
  return `${scheme}://${HOST.test(host) ? host : "localhost"}`;
}
