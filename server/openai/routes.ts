import { engineName } from "../../contract/names.js";
import type { Model } from "../../gen/studio/v1/model_pb.js";
import { isDatabaseUnavailable } from "../db/pg/pg-errors.js";
import { sendJson, type HttpRequest, type HttpResponse, type HttpRoute } from "../http/http-routes.js";
import { RegistryError } from "../registry/registry-errors.js";
import type { OpenAiDeps } from "./api-deps.js";
import { runImageCall } from "./image-call.js";
import { parseImageRequest } from "./image-request.js";
import { checkModel, createJob } from "./job-call.js";
import { OpenAiError, sendOpenAiError } from "./openai-errors.js";
import { readJsonBody } from "./request-body.js";
import { TextCall } from "./text-call.js";
import { parseChatRequest, parseCompletionRequest } from "./text-request.js";

type Handler = (req: HttpRequest, res: HttpResponse, params: Record<string, string>) => Promise<void>;

/** Auth refusals in OpenAI's shape: 401 for no or a bad key, 403 for a key whose role may not run jobs. */
function refuse(res: HttpResponse, status: 401 | 403, message: string) {
  const err =
    status === 401
      ? new OpenAiError(401, "authentication_error", `${message} (send a studio client token as the API key)`, "invalid_api_key")
      : new OpenAiError(403, "permission_error", message, "insufficient_permissions");
  sendOpenAiError(res, err);
}

/** Every error a handler throws, answered in OpenAI's shape (or the stream ended when it had begun). */
function guarded(deps: OpenAiDeps, handle: Handler): HttpRoute["handle"] {
  return async (req, res, params) => {
    try {
      await handle(req, res, params);
    } catch (err) {
      if (res.headersSent) {
        deps.logger.error({ err, path: req.url }, "OpenAI API: failed after the answer had begun");
        res.end();
        return;
      }
      if (err instanceof OpenAiError) return sendOpenAiError(res, err);
      if (isDatabaseUnavailable(err)) return sendOpenAiError(res, new OpenAiError(503, "server_error", "the database is unavailable; try again", "database_unavailable"));
      deps.logger.error({ err, path: req.url }, "OpenAI API: internal error");
      sendOpenAiError(res, new OpenAiError(500, "server_error", `internal error: ${err instanceof Error ? err.message : String(err)}`, "internal_error"));
    }
  };
}

/** OpenAI's model object, with the engine as an extra field. */
function modelObject(m: Model) {
  return {
    id: m.name,
    object: "model",
    created: Number(m.createTime?.seconds ?? 0n),
    owned_by: "studio",
    engine: m.source ? (engineName(m.source.engine) ?? "unknown") : "unknown",
  };
}

/**
 * The OpenAI-compatible API on the studio's port. Every route sits behind the studio's bearer
 * auth (checked from the headers before any body is read; a client or admin token is the API key);
 * each completion or image request is one job in the studio's queue.
 */
export function openAiRoutes(deps: OpenAiDeps): HttpRoute[] {
  const route = (method: HttpRoute["method"], path: RegExp, handle: Handler): HttpRoute => ({ method, path, handle: guarded(deps, handle), refuse });
  return [
    route("GET", /^\/v1\/models$/, async (_req, res) => {
      const models = await deps.registry.list({ enabledOnly: true });
      sendJson(res, 200, { object: "list", data: models.map(modelObject) });
    }),
    route("GET", /^\/v1\/models\/(?<id>.{1,300})$/, async (_req, res, params) => {
      let id: string;
      try {
        id = decodeURIComponent(params.id!);
      } catch {
        throw new OpenAiError(400, "invalid_request_error", "the model id is not valid percent-encoding", "invalid_value", "model");
      }
      try {
        const model = await deps.registry.get(id);
        if (!model.enabled) throw new RegistryError("model_not_found", id, "");
        sendJson(res, 200, modelObject(model));
      } catch (err) {
        if (err instanceof RegistryError)
          throw new OpenAiError(404, "invalid_request_error", `The model ${JSON.stringify(id)} does not exist (GET /v1/models lists the models)`, "model_not_found", "model");
        throw err;
      }
    }),
    route("POST", /^\/v1\/chat\/completions$/, (req, res) => text("chat", req, res, deps)),
    route("POST", /^\/v1\/completions$/, (req, res) => text("completion", req, res, deps)),
    route("POST", /^\/v1\/images\/generations$/, async (req, res) => {
      const request = parseImageRequest(await readJsonBody(req));
      await checkModel(deps, request.model, "image");
      const row = await createJob(deps, request.model, request.task);
      await runImageCall(req, res, request, row, deps);
    }),
    // Anything else under /v1 is answered in OpenAI's shape too, so that its clients show the message.
    ...(["GET", "POST"] as const).map((method) =>
      route(method, /^\/v1\/.*/, async (req) => {
        throw new OpenAiError(404, "invalid_request_error", `${method} ${new URL(req.url ?? "/", "http://x").pathname} is not part of this studio's OpenAI-compatible API (it serves /v1/models, /v1/chat/completions, /v1/completions and /v1/images/generations)`, "unknown_url");
      }),
    ),
  ];
}

async function text(kind: "chat" | "completion", req: HttpRequest, res: HttpResponse, deps: OpenAiDeps) {
  const body = await readJsonBody(req);
  const request = kind === "chat" ? parseChatRequest(body) : parseCompletionRequest(body);
  await checkModel(deps, request.model, "text");
  const row = await createJob(deps, request.model, request.task);
  await new TextCall(kind, request, row, res, deps).run();
}
