import { create } from "@bufbuild/protobuf";
import { z } from "zod";
import { formatPath } from "../../contract/issues.js";
import { taskIssues } from "../../contract/task.js";
import { ImageTaskSchema, TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { ModelCliDefaultsSchema } from "../../gen/studio/v1/model_pb.js";
import { badParameter } from "./openai-errors.js";

/** A POST /v1/images/generations request, checked and turned into the job's task. */
export interface ImageRequest {
  model: string;
  task: Task;
  responseFormat: "url" | "b64_json";
}

const ImageRequestSchema = z.object({
  model: z.string({ error: "is required" }).min(1, { error: "is required" }),
  prompt: z.string({ error: "is required" }),
  n: z.number().int().nullish(),
  /** "WIDTHxHEIGHT", or "auto" (or absent) for the model's default size. */
  size: z.string().nullish(),
  response_format: z.enum(["url", "b64_json"]).nullish(),
  /** Not OpenAI's, but what self-hosted image APIs take: the same seed gives the same image. */
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  negative_prompt: z.string().nullish(),
  output_format: z.string().nullish(),
  quality: z.string().nullish(),
  style: z.string().nullish(),
  user: z.string().nullish(),
});

const SIZE = /^(\d{1,5})x(\d{1,5})$/;

/** The contract's task paths as this endpoint's parameters. */
const PARAMS: Array<[RegExp, string]> = [
  [/^task\.image\.prompt/, "prompt"],
  [/^task\.image\.negative_prompt/, "negative_prompt"],
  [/^task\.image\.batch_count/, "n"],
  [/^task\.image\.seed/, "seed"],
  [/^task\.image\.overrides\.(width|height)/, "size"],
];

/** POST /v1/images/generations' body as an ImageTask; 400 naming the parameter otherwise. */
export function parseImageRequest(raw: unknown): ImageRequest {
  const parsed = ImageRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = formatPath(issue.path);
    throw badParameter(path, issue.message);
  }
  const body = parsed.data;
  if (body.output_format != null && body.output_format !== "png")
    throw badParameter("output_format", `only "png" is supported (got ${JSON.stringify(body.output_format)})`, "unsupported_parameter");
  if (body.n != null && body.n < 1) throw badParameter("n", `must be at least 1 (got ${body.n})`);
  const overrides = create(ModelCliDefaultsSchema);
  if (body.size != null && body.size !== "auto") {
    const m = SIZE.exec(body.size);
    if (!m) throw badParameter("size", `must be "auto" or WIDTHxHEIGHT, like "1024x1024" (got ${JSON.stringify(body.size.slice(0, 40))})`);
    const [width, height] = [Number(m[1]), Number(m[2])];
    // sd.cpp works in latent blocks of 8 pixels: another size would be rounded behind the caller's back.
    if (width % 8 !== 0 || height % 8 !== 0)
      throw badParameter("size", `width and height must be multiples of 8 (got ${body.size}; the nearest is ${round8(width)}x${round8(height)})`);
    overrides.width = width;
    overrides.height = height;
  }
  const image = create(ImageTaskSchema, {
    prompt: body.prompt,
    negativePrompt: body.negative_prompt ?? "",
    batchCount: body.n ?? 1,
    overrides,
    // -1 is the usual "random seed", which is what no seed means here (the studio picks one).
    ...(body.seed != null && body.seed !== -1 ? { seed: BigInt(body.seed) } : {}),
  });
  const task = create(TaskSchema, { kind: { case: "image", value: image } });
  const issues = taskIssues(task, "task");
  if (issues.length > 0) {
    const named = issues.map((i) => ({ ...i, path: PARAMS.find(([re]) => re.test(i.path))?.[1] ?? i.path }));
    const [first, ...rest] = named;
    throw badParameter(first!.path, [first!.message, ...rest.map((i) => `${i.path}: ${i.message}`)].join("; "));
  }
  return { model: body.model, task, responseFormat: body.response_format ?? "url" };
}

const round8 = (n: number) => Math.max(8, Math.round(n / 8) * 8);
