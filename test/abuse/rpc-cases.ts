import { Code } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import type { StateJobs } from "./abuse-studio.js";

/** One bad request: which RPC, what it sends, the code it must get and what the message must name. */
export interface RpcCase {
  name: string;
  service: DescService;
  method: string;
  request: Record<string, unknown>;
  code: Code;
  mentions: string[];
}

const file = (over: Record<string, unknown> = {}) => ({
  role: ModelFileRole.DIFFUSION_MODEL,
  filename: "m.gguf",
  url: "http://127.0.0.1:9/m.gguf",
  ...over,
});
const sdSource = (over: Record<string, unknown> = {}) => ({ engine: ModelEngine.SD_CPP, files: [file()], ...over });
const image = (over: Record<string, unknown> = {}) => ({ kind: { case: "image", value: { prompt: "a fox", seed: 1n, ...over } } });
const text = (over: Record<string, unknown> = {}) => ({ kind: { case: "text", value: { prompt: "hi", ...over } } });

/** URLs a worker must never be asked to fetch. */
export const BAD_URLS: Array<[string, string]> = [
  ["file:///etc/passwd", "file:"],
  ["ftp://127.0.0.1/m.gguf", "ftp:"],
  ["data:application/octet-stream;base64,AAAA", "data:"],
  ["javascript:alert(1)", "javascript:"],
  ["gopher://127.0.0.1/x", "gopher:"],
  ["not a url", "absolute"],
  ["/relative/m.gguf", "absolute"],
  ["http://user:secret@127.0.0.1/m.gguf", "credentials"],
  [`http://127.0.0.1/${"a".repeat(4100)}`, "4096"],
];

/** File names that would be paths, or worse, if used as given. */
export const BAD_FILENAMES: Array<[string, string]> = [
  ["../m.gguf", "bare file name"],
  ["models/m.gguf", "bare file name"],
  ["/etc/passwd", "bare file name"],
  ["..\\m.gguf", "bare file name"],
  ["..", ".."],
  ["", "must not be empty"],
  ["m\u0000.gguf", "control characters"],
  ["m\n.gguf", "control characters"],
  ["m\u001b[31m.gguf", "control characters"],
  ["x".repeat(256), "255 bytes"],
];

export const BAD_SHA256: string[] = ["xyz", "a".repeat(63), "a".repeat(65), "g".repeat(64), " ".repeat(64), `${"a".repeat(62)}\u0000a`];

const CLI_DEFAULTS: Array<[Record<string, unknown>, string]> = [
  [{ steps: 0 }, "steps"],
  [{ steps: 1001 }, "steps"],
  [{ width: 7 }, "width"],
  [{ width: 8200 }, "width"],
  [{ height: 12 }, "height"],
  [{ cfgScale: Number.NaN }, "cfgScale"],
  [{ cfgScale: -1 }, "cfgScale"],
  [{ cfgScale: 1e9 }, "cfgScale"],
];

/** Every bad request of the suite that goes through a typed client (so over all four protocols). */
export function rpcCases(s: StateJobs): RpcCase[] {
  const R = RegistryService;
  const J = JobService;
  const W = WorkerService;
  const T = TokenService;
  const cases: RpcCase[] = [];
  const add = (name: string, service: DescService, method: string, request: Record<string, unknown>, code: Code, mentions: string[]) =>
    cases.push({ name, service, method, request, code, mentions });
  const inv = Code.InvalidArgument;

  // Registry: every URL, file name, digest and setting rule, on create, update and verify.
  for (const [url, why] of BAD_URLS) {
    add(`CreateModel url ${url.slice(0, 30)}`, R, "createModel", { name: "abuse-model", source: sdSource({ files: [file({ url })] }) }, inv, ["source.files[0].url", why]);
    add(`UpdateModel url ${url.slice(0, 30)}`, R, "updateModel", { name: "synthetic", source: sdSource({ files: [file({ url })] }) }, inv, ["source.files[0].url", why]);
    add(`VerifyModel url ${url.slice(0, 30)}`, R, "verifyModel", { target: { case: "source", value: sdSource({ files: [file({ url })] }) } }, inv, ["source.files[0].url", why]);
  }
  for (const [filename, why] of BAD_FILENAMES) {
    add(`CreateModel filename ${JSON.stringify(filename.slice(0, 20))}`, R, "createModel", { name: "abuse-model", source: sdSource({ files: [file({ filename })] }) }, inv, ["source.files[0].filename", why]);
    add(`VerifyModel filename ${JSON.stringify(filename.slice(0, 20))}`, R, "verifyModel", { target: { case: "source", value: sdSource({ files: [file({ filename })] }) } }, inv, ["source.files[0].filename", why]);
  }
  for (const sha256 of BAD_SHA256)
    add(`CreateModel sha256 ${JSON.stringify(sha256.slice(0, 12))}`, R, "createModel", { name: "abuse-model", source: sdSource({ files: [file({ sha256 })] }) }, inv, ["source.files[0].sha256", "64 hex digits"]);
  for (const [cliDefaults, field] of CLI_DEFAULTS) {
    add(`CreateModel cliDefaults ${JSON.stringify(cliDefaults)}`, R, "createModel", { name: "abuse-model", source: sdSource({ cliDefaults }) }, inv, [`source.cliDefaults.${field}`]);
    add(`CreateJob overrides ${JSON.stringify(cliDefaults)}`, J, "createJob", { model: "synthetic", task: image({ overrides: cliDefaults }) }, inv, [`task.image.overrides`, field]);
  }
  add("CreateModel no source", R, "createModel", { name: "abuse-model" }, inv, ["source", "required"]);
  add("CreateModel engine 99", R, "createModel", { name: "abuse-model", source: sdSource({ engine: 99 }) }, inv, ["source.engine", "99"]);
  add("CreateModel engine unspecified", R, "createModel", { name: "abuse-model", source: sdSource({ engine: 0 }) }, inv, ["source.engine"]);
  add("CreateModel role 99", R, "createModel", { name: "abuse-model", source: sdSource({ files: [file({ role: 99 })] }) }, inv, ["source.files[0].role", "99"]);
  add("CreateModel 33 files", R, "createModel", { name: "abuse-model", source: sdSource({ files: Array.from({ length: 33 }, (_, i) => file({ filename: `f${i}.gguf` })) }) }, inv, ["source.files", "32"]);
  add("CreateModel sd-cpp without a model file", R, "createModel", { name: "abuse-model", source: sdSource({ files: [] }) }, inv, ["source.files", "sd-cpp"]);
  add("CreateModel approx_bytes past 2^53", R, "createModel", { name: "abuse-model", source: sdSource({ files: [file({ approxBytes: 2n ** 63n - 1n })] }) }, inv, ["approxBytes"]);
  add("CreateModel duplicate file name", R, "createModel", { name: "abuse-model", source: sdSource({ files: [file(), file({ role: ModelFileRole.VAE })] }) }, inv, ["m.gguf"]);
  for (const name of ["", "a b", "../etc", "a/b", "x\u0000y", "-lead", "n".repeat(200)])
    add(`CreateModel name ${JSON.stringify(name.slice(0, 12))}`, R, "createModel", { name, source: { engine: ModelEngine.SYNTHETIC } }, inv, ["name"]);
  add("CreateModel description 100k", R, "createModel", { name: "abuse-model", description: "d".repeat(100_000), source: sdSource() }, inv, ["description", "4096"]);
  add("CreateModel over the message limit", R, "createModel", { name: "abuse-model", description: "d".repeat(600_000), source: sdSource() }, Code.ResourceExhausted, ["readMaxBytes"]);
  add("CreateModel existing", R, "createModel", { name: "synthetic", source: { engine: ModelEngine.SYNTHETIC } }, Code.AlreadyExists, ['"synthetic"']);
  for (const name of ["nope", "../../etc/passwd", ""]) {
    add(`GetModel ${JSON.stringify(name)}`, R, "getModel", { name }, Code.NotFound, [`"${name}"`]);
    add(`DeleteModel ${JSON.stringify(name)}`, R, "deleteModel", { name }, Code.NotFound, [`"${name}"`]);
    add(`SetModelEnabled ${JSON.stringify(name)}`, R, "setModelEnabled", { name, enabled: false }, Code.NotFound, [`"${name}"`]);
    add(`UpdateModel ${JSON.stringify(name)}`, R, "updateModel", { name, source: { engine: ModelEngine.SYNTHETIC } }, Code.NotFound, [`"${name}"`]);
  }
  add("VerifyModel no target", R, "verifyModel", {}, inv, ["target"]);
  add("VerifyModel unknown model", R, "verifyModel", { target: { case: "name", value: "nope" } }, Code.NotFound, ['"nope"']);

  // Jobs: every task rule, bounds on numbers and strings, unknown and unfit models.
  const long = "p".repeat(16_001);
  const taskCases: Array<[string, Record<string, unknown> | undefined, string[]]> = [
    ["no task", undefined, ["task", "image or text"]],
    ["empty task", { kind: { case: undefined } }, ["task", "image or text"]],
    ["blank prompt", image({ prompt: "  " }), ["task.image.prompt", "empty"]],
    ["prompt 16001", image({ prompt: long }), ["task.image.prompt", "16000"]],
    ["negative prompt 16001", image({ negativePrompt: long }), ["task.image.negative_prompt", "16000"]],
    ["batch 17", image({ batchCount: 17 }), ["task.image.batch_count", "17"]],
    ["batch 2^32-1", image({ batchCount: 4294967295 }), ["task.image.batch_count", "4294967295"]],
    ["seed -1", image({ seed: -1n }), ["task.image.seed", "-1"]],
    ["seed 2^53", image({ seed: 2n ** 53n }), ["task.image.seed", "9007199254740992"]],
    ["seed -2^63", image({ seed: -(2n ** 63n) }), ["task.image.seed", "-9223372036854775808"]],
    ["text prompt and messages", text({ messages: [{ role: "user", content: "x" }] }), ["task.text", "exactly one"]],
    ["text neither", text({ prompt: "" }), ["task.text", "exactly one"]],
    ["text role", text({ prompt: "", messages: [{ role: "god", content: "x" }] }), ["task.text.messages[0].role", '"god"']],
    ["text 257 messages", text({ prompt: "", messages: Array.from({ length: 257 }, () => ({ role: "user", content: "x" })) }), ["task.text.messages", "256"]],
    ["text max_tokens 0", text({ maxTokens: 0 }), ["task.text.max_tokens", "0"]],
    ["text max_tokens 40000", text({ maxTokens: 40_000 }), ["task.text.max_tokens", "40000"]],
    ["text temperature -1", text({ temperature: -1 }), ["task.text.temperature", "-1"]],
    ["text temperature NaN", text({ temperature: Number.NaN }), ["task.text.temperature", "NaN"]],
    ["text temperature Infinity", text({ temperature: Number.POSITIVE_INFINITY }), ["task.text.temperature", "Infinity"]],
    ["text 17 stops", text({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }), ["task.text.stop", "17"]],
    ["text empty stop", text({ stop: [""] }), ["task.text.stop[0]"]],
    ["text seed -5", text({ seed: -5n }), ["task.text.seed", "-5"]],
  ];
  for (const [name, task, mentions] of taskCases) add(`CreateJob ${name}`, J, "createJob", { model: "synthetic", task }, inv, mentions);
  const ok = image();
  add("CreateJob priority 1001", J, "createJob", { model: "synthetic", task: ok, priority: 1001 }, inv, ["priority", "1001"]);
  add("CreateJob priority -2^31", J, "createJob", { model: "synthetic", task: ok, priority: -(2 ** 31) }, inv, ["priority", "-2147483648"]);
  add("CreateJob max_attempts 101", J, "createJob", { model: "synthetic", task: ok, maxAttempts: 101 }, inv, ["max_attempts", "101"]);
  add("CreateJob max_attempts 2^32-1", J, "createJob", { model: "synthetic", task: ok, maxAttempts: 4294967295 }, inv, ["max_attempts", "4294967295"]);
  add("CreateJob idempotency key 257", J, "createJob", { model: "synthetic", task: ok, idempotencyKey: "k".repeat(257) }, inv, ["idempotency_key", "256"]);
  add("CreateJob no model", J, "createJob", { task: ok }, inv, ["model"]);
  add("CreateJob unknown model", J, "createJob", { model: "nope", task: ok }, inv, ["model", '"nope"']);
  add("CreateJob model with a slash", J, "createJob", { model: "../synthetic", task: ok }, inv, ["model", "../synthetic"]);
  add("CreateJob text task on an sd-cpp model", J, "createJob", { model: "z-image-turbo", task: text() }, inv, ["task", "z-image-turbo", "sd-cpp", "text"]);
  add("CreateJob image task on a llama-cpp model", J, "createJob", { model: "qwen3-0.6b", task: ok }, inv, ["task", "qwen3-0.6b", "llama-cpp", "image"]);
  add("CreateJob over the message limit", J, "createJob", { model: "synthetic", task: image({ prompt: "x".repeat(3_000_000) }) }, Code.ResourceExhausted, ["readMaxBytes"]);
  for (const [method, label] of [["getJob", "GetJob"], ["cancelJob", "CancelJob"], ["retryJob", "RetryJob"]] as const) {
    add(`${label} empty id`, J, method, { jobId: "" }, inv, ["job_id"]);
    add(`${label} unknown id`, J, method, { jobId: "0000-nope" }, Code.NotFound, ['"0000-nope"']);
    add(`${label} id with control characters`, J, method, { jobId: "a\u0000b\nc" }, Code.NotFound, ["a\\u0000b\\nc"]);
  }
  add("PromoteJob empty id", J, "promoteJob", { jobId: "", model: "synthetic" }, inv, ["job_id"]);
  add("PromoteJob unknown id", J, "promoteJob", { jobId: "0000-nope", model: "synthetic" }, Code.NotFound, ['"0000-nope"']);
  add("PromoteJob no model", J, "promoteJob", { jobId: s.queued }, inv, ["model"]);
  add("PromoteJob unknown model", J, "promoteJob", { jobId: s.queued, model: "nope" }, inv, ["model", '"nope"']);
  add("PromoteJob image job to a llama-cpp model", J, "promoteJob", { jobId: s.queued, model: "qwen3-0.6b" }, inv, ["model", "qwen3-0.6b", "llama-cpp"]);
  add("ListJobs status 99", J, "listJobs", { statuses: [99] }, inv, ["statuses[0]", "99"]);
  add("ListJobs status unspecified", J, "listJobs", { statuses: [1, 0] }, inv, ["statuses[1]", "UNSPECIFIED"]);
  add("ListJobs forged page token", J, "listJobs", { pageToken: "eyJjcmVhdGVkQXQiOjF9" }, inv, ["page_token"]);
  add("ListJobs bad model name", J, "listJobs", { model: "a b" }, inv, ["model", "a b"]);
  add("WatchJobs status 99", J, "watchJobs", { statuses: [99] }, inv, ["statuses[0]", "99"]);
  add("GetJobOutput unknown job", J, "getJobOutput", { jobId: "0000-nope" }, Code.NotFound, ['"0000-nope"']);

  // Jobs in the wrong state for the action.
  for (const [label, id, status] of [["SUCCEEDED", s.succeeded.jobId, "SUCCEEDED"], ["FAILED", s.failed.jobId, "FAILED"], ["CANCELLED", s.cancelled, "CANCELLED"]] as const)
    add(`CancelJob on ${label}`, J, "cancelJob", { jobId: id }, Code.FailedPrecondition, [id, status]);
  for (const [label, id] of [["QUEUED", s.queued], ["RUNNING", s.running.jobId], ["SUCCEEDED", s.succeeded.jobId]] as const)
    add(`RetryJob on ${label}`, J, "retryJob", { jobId: id }, Code.FailedPrecondition, [id, label]);
  add("GetJobOutput index 1 of a one-output job", J, "getJobOutput", { jobId: s.succeeded.jobId, index: 1 }, Code.NotFound, [s.succeeded.jobId, "output 1"]);
  add("GetJobOutput of a FAILED job", J, "getJobOutput", { jobId: s.failed.jobId }, Code.NotFound, [s.failed.jobId, "FAILED"]);
  add("GetJobOutput of a QUEUED job", J, "getJobOutput", { jobId: s.queued }, Code.NotFound, [s.queued, "QUEUED"]);
  for (const [label, lease] of [["SUCCEEDED", s.succeeded], ["FAILED", s.failed]] as const) {
    add(`CompleteJob on ${label} (stale lease)`, W, "completeJob", { ...lease, outputs: [] }, Code.FailedPrecondition, [lease.leaseId, label]);
    add(`FailJob on ${label} (stale lease)`, W, "failJob", { ...lease, error: "late" }, Code.FailedPrecondition, [lease.leaseId, label]);
    add(`ReportProgress on ${label} (stale lease)`, W, "reportProgress", { ...lease, progress: { phase: 3 } }, Code.FailedPrecondition, [lease.leaseId, label]);
  }
  add("CompleteJob with a forged lease", W, "completeJob", { jobId: s.running.jobId, leaseId: "forged", outputs: [] }, Code.FailedPrecondition, ['"forged"']);
  add("CompleteJob with no outputs for a one-output task", W, "completeJob", { ...s.running, outputs: [] }, inv, ["1"]);
  add("CompleteJob with a bad output digest", W, "completeJob", { ...s.running, outputs: [{ index: 0, mimeType: "image/png", data: new Uint8Array([1, 2, 3]), sha256: "ab".repeat(32) }] }, inv, ["sha256"]);
  add("CompleteJob with an output index 5", W, "completeJob", { ...s.running, outputs: [{ index: 5, mimeType: "image/png", data: new Uint8Array([1]), sha256: "" }] }, inv, ["index"]);

  // Workers (polling API).
  add("ClaimJob no worker name", W, "claimJob", { engines: [ModelEngine.SYNTHETIC] }, inv, ["worker_name"]);
  add("ClaimJob worker name 200", W, "claimJob", { workerName: "w".repeat(200), engines: [ModelEngine.SYNTHETIC] }, inv, ["worker_name", "128"]);
  add("ClaimJob no engines", W, "claimJob", { workerName: "w" }, inv, ["engines"]);
  add("ClaimJob engine 99", W, "claimJob", { workerName: "w", engines: [99] }, inv, ["engines", "99"]);
  add("ClaimJob wait 40 s", W, "claimJob", { workerName: "w", engines: [ModelEngine.SYNTHETIC], waitMs: 40_000 }, inv, ["wait_ms", "40000"]);
  // A worker's call on a job it holds no lease for is a fencing refusal, whether or not the job exists.
  add("FailJob unknown job", W, "failJob", { jobId: "0000-nope", leaseId: "x", error: "e" }, Code.FailedPrecondition, ['"0000-nope"', "no such job"]);

  // Tokens.
  add("CreateToken no name", T, "createToken", { role: 2 }, inv, ["name"]);
  add("CreateToken role unspecified", T, "createToken", { name: "x", role: 0 }, inv, ["role"]);
  add("CreateToken role 99", T, "createToken", { name: "x", role: 99 }, inv, ["role"]);
  add("CreateToken name with control characters", T, "createToken", { name: "a\u0000\u001b[2J", role: 2 }, inv, ["name"]);
  add("CreateToken over the message limit", T, "createToken", { name: "n".repeat(20_000), role: 2 }, Code.ResourceExhausted, ["readMaxBytes"]);
  add("RevokeToken unknown", T, "revokeToken", { id: "nope" }, Code.NotFound, ['"nope"']);
  add("RevokeToken empty", T, "revokeToken", { id: "" }, inv, ["id"]);
  return cases;
}
