import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { z } from "zod";
import { formatPath, type ValidationIssue } from "../../contract/issues.js";
import { taskIssues } from "../../contract/task.js";
import { ChatMessageSchema, TaskSchema, TextTaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { badParameter } from "./openai-errors.js";

/** A chat or completions request, checked and turned into the job's task. */
export interface TextRequest {
  model: string;
  task: Task;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with the usage and no choices. */
  includeUsage: boolean;
}

const num = z.number().finite().nullish();
const int = z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish();
/** OpenAI's stop: one string or a list of them. */
const stop = z.union([z.string(), z.array(z.string())]).nullish();

/** Fields both endpoints share; unknown fields are ignored, as OpenAI-compatible servers do. */
const common = {
  model: z.string({ error: "is required" }).min(1, { error: "is required" }),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: int,
  temperature: num,
  top_p: num,
  frequency_penalty: num,
  presence_penalty: num,
  stop,
  seed: int,
  n: int,
  logit_bias: z.record(z.string(), z.unknown()).nullish(),
  user: z.string().nullish(),
};

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const chatMessage = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});

const ChatRequestSchema = z.object({
  ...common,
  messages: z.array(chatMessage, { error: "is required: a list of messages" }).min(1, { error: "must hold at least one message" }),
  max_completion_tokens: int,
  logprobs: z.boolean().nullish(),
  top_logprobs: int,
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
  tool_choice: z.unknown().optional(),
  response_format: z.looseObject({ type: z.string() }).nullish(),
  /** What llama-server and vLLM take to switch a thinking model's reasoning on or off. */
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});

const CompletionRequestSchema = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.unknown())], { error: "is required: a string" }),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  best_of: int,
  logprobs: int,
});

/** The roles a chat message may have here: OpenAI's "developer" is its newer name for system. */
const ROLES: Record<string, string> = { system: "system", developer: "system", user: "user", assistant: "assistant" };

/** The first issue of a failed parse as a 400 naming its parameter (the others in the message). */
function firstIssue(error: z.ZodError): never {
  const issues = error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
  throw badParameterFrom(issues);
}

function badParameterFrom(issues: ValidationIssue[]) {
  const [first, ...rest] = issues;
  const more = rest.length === 0 ? "" : `; also ${rest.map((i) => `${i.path}: ${i.message}`).join("; ")}`;
  return badParameter(first!.path, `${first!.message}${more}`);
}

/** Parameters that would change the answer in a way this server cannot honour: refused by name, never ignored. */
function refuse(param: string, message: string): never {
  throw badParameter(param, message, "unsupported_parameter");
}

function sampling(body: z.infer<typeof ChatRequestSchema> | z.infer<typeof CompletionRequestSchema>, maxTokens: number | null | undefined) {
  if (body.n != null && body.n !== 1) refuse("n", `only 1 choice per request is supported (got ${body.n})`);
  if (body.logit_bias != null && Object.keys(body.logit_bias).length > 0) refuse("logit_bias", "is not supported");
  const fields: MessageInitShape<typeof TextTaskSchema> = {};
  if (maxTokens != null) fields.maxTokens = maxTokens;
  if (body.temperature != null) fields.temperature = body.temperature;
  if (body.top_p != null) fields.topP = body.top_p;
  if (body.frequency_penalty != null) fields.frequencyPenalty = body.frequency_penalty;
  if (body.presence_penalty != null) fields.presencePenalty = body.presence_penalty;
  if (body.stop != null) fields.stop = typeof body.stop === "string" ? [body.stop] : body.stop;
  // -1 is llama.cpp's (and many clients') "pick a random seed", which is what no seed means here.
  if (body.seed != null && body.seed !== -1) fields.seed = BigInt(body.seed);
  return fields;
}

/**
 * The contract's task rules (contract/task.ts), named by the request's parameters: `task.text.top_p`
 * is `top_p`, `task.text.messages[2].content` is `messages[2].content`, and so on.
 */
function checkTask(task: Task, names: { maxTokens: string; input: "messages" | "prompt" }): void {
  const issues = taskIssues(task, "task").map((issue) => ({ ...issue, path: textParam(issue.path, names) }));
  if (issues.length > 0) throw badParameterFrom(issues);
}

function textParam(path: string, names: { maxTokens: string; input: "messages" | "prompt" }): string {
  const rest = path.replace(/^task\.text\.?/, "");
  if (rest === "") return names.input;
  if (rest.startsWith("max_tokens")) return names.maxTokens;
  return rest;
}

/** POST /v1/chat/completions' body as a chat TextTask; 400 naming the parameter otherwise. */
export function parseChatRequest(raw: unknown): TextRequest {
  const parsed = ChatRequestSchema.safeParse(raw);
  if (!parsed.success) firstIssue(parsed.error);
  const body = parsed.data;
  if (body.logprobs) refuse("logprobs", "is not supported");
  if (body.top_logprobs != null) refuse("top_logprobs", "is not supported");
  if (body.tools != null && body.tools.length > 0) refuse("tools", "tool calls are not supported");
  if (body.functions != null && body.functions.length > 0) refuse("functions", "function calls are not supported");
  if (body.tool_choice != null && body.tool_choice !== "none" && body.tool_choice !== "auto") refuse("tool_choice", "tool calls are not supported");
  if (body.response_format != null && body.response_format.type !== "text")
    refuse("response_format", `only {"type": "text"} is supported (got ${JSON.stringify(body.response_format.type)})`);
  const messages = body.messages.map((m, i) => {
    const role = ROLES[m.role];
    if (!role) refuse(`messages[${i}].role`, `must be system, developer, user or assistant (got ${JSON.stringify(m.role)}); tool messages are not supported`);
    return create(ChatMessageSchema, { role, content: messageText(m.content, i) });
  });
  let thinking: boolean | undefined;
  for (const [key, value] of Object.entries(body.chat_template_kwargs ?? {})) {
    if (key !== "enable_thinking") refuse(`chat_template_kwargs.${key}`, "only enable_thinking is supported");
    if (typeof value !== "boolean") throw badParameter("chat_template_kwargs.enable_thinking", `must be true or false (got ${JSON.stringify(value)})`);
    thinking = value;
  }
  const maxTokensParam = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
  const text = create(TextTaskSchema, { messages, thinking, ...sampling(body, body.max_completion_tokens ?? body.max_tokens) });
  const task = create(TaskSchema, { kind: { case: "text", value: text } });
  checkTask(task, { maxTokens: maxTokensParam, input: "messages" });
  return { model: body.model, task, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}

/** A message's content: a string, or text parts joined (OpenAI's content-part form); other parts are refused. */
function messageText(content: string | Array<{ type: string; text?: string }> | null | undefined, i: number): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part, j) => {
      if (part.type !== "text" || typeof part.text !== "string")
        refuse(`messages[${i}].content[${j}]`, `only text parts are supported (got type ${JSON.stringify(part.type)})`);
      return part.text;
    })
    .join("\n");
}

/** POST /v1/completions' body as a prompt TextTask; 400 naming the parameter otherwise. */
export function parseCompletionRequest(raw: unknown): TextRequest {
  const parsed = CompletionRequestSchema.safeParse(raw);
  if (!parsed.success) firstIssue(parsed.error);
  const body = parsed.data;
  if (body.echo) refuse("echo", "is not supported");
  if (body.suffix) refuse("suffix", "is not supported");
  if (body.best_of != null && body.best_of !== 1) refuse("best_of", `only 1 is supported (got ${body.best_of})`);
  if (body.logprobs != null) refuse("logprobs", "is not supported");
  let prompt: string;
  if (typeof body.prompt === "string") prompt = body.prompt;
  else if (body.prompt.length === 1 && typeof body.prompt[0] === "string") prompt = body.prompt[0];
  else refuse("prompt", "must be one string (a list of prompts or of token ids is not supported)");
  if (prompt === "") throw badParameter("prompt", "must not be empty");
  const text = create(TextTaskSchema, { prompt, ...sampling(body, body.max_tokens) });
  const task = create(TaskSchema, { kind: { case: "text", value: text } });
  checkTask(task, { maxTokens: "max_tokens", input: "prompt" });
  return { model: body.model, task, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}
