import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { runCli } from "../cli/run-cli.js";
import { healthStatus, tablesDigest } from "./abuse-studio.js";

const HOOK_TIMEOUT_MS = 30_000;

let t: TestStudio;
let dir: string;
let before: ReturnType<typeof tablesDigest>;

beforeAll(async () => {
  t = await startTestStudio();
  dir = mkdtempSync(join(tmpdir(), "abuse-json-"));
  before = tablesDigest(t.dataDir);
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

const img = `"task":{"image":{"prompt":"x"}}`;
const sdFile = (extra: string) => `{"engine":"MODEL_ENGINE_SD_CPP","files":[{"role":"MODEL_FILE_ROLE_DIFFUSION_MODEL","filename":"a.gguf","url":"http://127.0.0.1:9/a"${extra}}]}`;

/** Connect JSON bodies a typed client could not send: wrong JSON types, broken JSON, bad oneofs and enum names. */
const RAW: Array<[method: string, body: string, mentions: string[]]> = [
  ["JobService/CreateJob", `{"model":5,${img}}`, ["CreateJobRequest.model", "5"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":"x"}`, ["studio.v1.Task", '"x"']],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":7}}}`, ["ImageTask.prompt", "7"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","seed":"abc"}}}`, ["ImageTask.seed", "abc"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","seed":"99999999999999999999999"}}}`, ["ImageTask.seed", "99999999999999999999999"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","batchCount":-1}}}`, ["ImageTask.batch_count", "-1"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","batchCount":1e20}}}`, ["ImageTask.batch_count", "100000000000000000000"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","batchCount":1.5}}}`, ["ImageTask.batch_count", "1.5"]],
  ["JobService/CreateJob", `{"model":"synthetic","priority":"high",${img}}`, ["CreateJobRequest.priority", "high"]],
  ["JobService/CreateJob", `{"model":"synthetic","priority":1.5,${img}}`, ["CreateJobRequest.priority", "1.5"]],
  ["JobService/CreateJob", `{"model":"synthetic","maxAttempts":-1,${img}}`, ["CreateJobRequest.max_attempts", "-1"]],
  ["JobService/CreateJob", `{"model":"synthetic","idempotencyKey":{"a":1},${img}}`, ["CreateJobRequest.idempotency_key", "object"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x"},"text":{"prompt":"y"}}}`, ["Task.kind", "image and text"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","overrides":{"steps":"many"}}}}`, ["ModelCliDefaults.steps", "many"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"image":{"prompt":"x","overrides":{"width":-64}}}}`, ["ModelCliDefaults.width", "-64"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"text":{"prompt":"x","temperature":"hot"}}}`, ["TextTask.temperature", "hot"]],
  ["JobService/CreateJob", `{"model":"synthetic","task":{"text":{"messages":{"role":"user"}}}}`, ["TextTask.messages"]],
  ["JobService/CreateJob", `not json`, ["CreateJobRequest", "JSON Parse error"]],
  ["JobService/CreateJob", `{"model":"synthetic",`, ["CreateJobRequest", "JSON Parse error"]],
  ["JobService/CreateJob", `[1,2]`, ["CreateJobRequest", "Array"]],
  ["JobService/CreateJob", `null`, ["CreateJobRequest", "null"]],
  ["JobService/CreateJob", `"synthetic"`, ["CreateJobRequest"]],
  ["JobService/CreateJob", ``, ["CreateJobRequest"]],
  ["JobService/ListJobs", `{"pageSize":-3}`, ["ListJobsRequest.page_size", "-3"]],
  ["JobService/ListJobs", `{"statuses":"JOB_STATUS_QUEUED"}`, ["ListJobsRequest.statuses"]],
  ["JobService/GetJob", `{"jobId":["a"]}`, ["GetJobRequest.job_id"]],
  ["JobService/CancelJob", `{"jobId":true}`, ["CancelJobRequest.job_id", "true"]],
  ["RegistryService/CreateModel", `{"name":12,"source":{"engine":"MODEL_ENGINE_SYNTHETIC"}}`, ["CreateModelRequest.name", "12"]],
  ["RegistryService/CreateModel", `{"name":"x","enabled":"yes","source":{"engine":"MODEL_ENGINE_SYNTHETIC"}}`, ["CreateModelRequest.enabled", "yes"]],
  ["RegistryService/CreateModel", `{"name":"x","source":{"engine":"MODEL_ENGINE_SD_CPP","files":{}}}`, ["ModelSource.files", "object"]],
  ["RegistryService/CreateModel", `{"name":"x","source":${sdFile(`,"approxBytes":-5`)}}`, ["ModelFile.approx_bytes", "-5"]],
  ["RegistryService/CreateModel", `{"name":"x","source":${sdFile(`,"approxBytes":"lots"`)}}`, ["ModelFile.approx_bytes", "lots"]],
  ["RegistryService/CreateModel", `{"name":"x","source":${sdFile(`,"sha256":42`)}}`, ["ModelFile.sha256", "42"]],
  ["RegistryService/CreateModel", `{"name":"x","source":{"engine":"ENGINE_NOPE"}}`, ["CreateModelRequest.source.engine", '"ENGINE_NOPE"', 'MODEL_ENGINE_SD_CPP (or "sd-cpp")']],
  ["RegistryService/CreateModel", `{"name":"x","source":${sdFile("").replace("MODEL_FILE_ROLE_DIFFUSION_MODEL", "MODEL_FILE_ROLE_NOPE")}}`, ["CreateModelRequest.source.files[0].role", "MODEL_FILE_ROLE_VAE"]],
  ["RegistryService/CreateModel", `{"name":"x","source":{"engine":"sd_cpp"}}`, ["source.engine", '"sd_cpp"', "MODEL_ENGINE_SYNTHETIC"]],
  // No engine at all reaches the registry's rule, which names the proto values to send.
  ["RegistryService/CreateModel", `{"name":"x","source":{"files":[]}}`, ["source.engine", "MODEL_ENGINE_SD_CPP", "got MODEL_ENGINE_UNSPECIFIED"]],
  ["JobService/ListJobs", `{"statuses":["JOB_STATUS_QUEUED","JOB_STATUS_NOPE"]}`, ["ListJobsRequest.statuses[1]", '"JOB_STATUS_NOPE"', "JOB_STATUS_QUEUED, JOB_STATUS_OFFERED"]],
  ["RegistryService/VerifyModel", `{"name":"synthetic","source":{"engine":"MODEL_ENGINE_SYNTHETIC"}}`, ["VerifyModelRequest.target"]],
  ["TokenService/CreateToken", `{"name":"x","role":"TOKEN_ROLE_GOD"}`, ["CreateTokenRequest.role", '"TOKEN_ROLE_GOD"', "TOKEN_ROLE_ADMIN"]],
  ["TokenService/CreateToken", `{"name":["x"],"role":"TOKEN_ROLE_CLIENT"}`, ["CreateTokenRequest.name"]],
  ["WorkerService/ClaimJob", `{"workerName":"w","waitMs":-1,"engines":["MODEL_ENGINE_SYNTHETIC"]}`, ["ClaimJobRequest.wait_ms", "-1"]],
  ["WorkerService/ClaimJob", `{"workerName":"w","engines":["MODEL_ENGINE_NOPE"]}`, ["ClaimJobRequest.engines[0]", "MODEL_ENGINE_LLAMA_CPP"]],
  ["WorkerService/CompleteJob", `{"jobId":"x","leaseId":"y","outputs":[{"data":"%%%not base64"}]}`, ["OutputData.data"]],
  ["WorkerService/Heartbeat", `{"leaseIds":"abc"}`, ["HeartbeatRequest.lease_ids"]],
];

/** One enveloped message (gRPC-Web and Connect streaming frame it alike): flags 0, length, JSON. */
function grpcWebFrame(json: string): Uint8Array<ArrayBuffer> {
  const body = new TextEncoder().encode(json);
  const frame = new Uint8Array(5 + body.length);
  new DataView(frame.buffer).setUint32(1, body.length);
  frame.set(body, 5);
  return frame;
}

async function post(method: string, body: string, contentType = "application/json") {
  const res = await fetch(`${t.url}/studio.v1.${method}`, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await res.text();
  let json: { code?: string; message?: string } = {};
  try {
    json = JSON.parse(text);
  } catch {
    // Not a Connect error body; the assertions say so.
  }
  return { status: res.status, code: json.code, message: json.message ?? text };
}

describe("malformed Connect JSON bodies (posted with fetch)", () => {
  RAW.forEach(([method, body, mentions], i) => {
    test(`${i}: ${method} ${body.slice(0, 60)}`, async () => {
      const r = await post(method, body);
      expect({ status: r.status, code: r.code }).toEqual({ status: 400, code: "invalid_argument" });
      for (const m of mentions) expect(r.message).toContain(m);
    });
  });

  test("a body that is not JSON is refused by content type (415), and an unknown method is 404", async () => {
    expect((await post("JobService/CreateJob", `{"model":"synthetic",${img}}`, "text/plain")).status).toBe(415);
    expect((await post("NopeService/Nope", "{}")).status).toBe(404);
    expect((await post("JobService/Nope", "{}")).status).toBe(404);
  });

  test("an unknown status name in a ListJobs filter is refused over gRPC-Web JSON too (it used to list every job)", async () => {
    const res = await fetch(`${t.url}/studio.v1.JobService/ListJobs`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+json" },
      body: grpcWebFrame(`{"statuses":["JOB_STATUS_DONE"]}`),
    });
    const trailers = Buffer.from(await res.arrayBuffer()).toString("latin1");
    expect(trailers).toMatch(/grpc-status: ?3\r\n/);
    expect(decodeURIComponent(/grpc-message: ?([^\r\n]*)/.exec(trailers)?.[1] ?? "")).toContain('ListJobsRequest.statuses[0]: unknown JobStatus "JOB_STATUS_DONE"');
  });

  test("and in a WatchJobs filter over Connect streaming JSON", async () => {
    const res = await fetch(`${t.url}/studio.v1.JobService/WatchJobs`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: grpcWebFrame(`{"statuses":["queued"]}`),
    });
    const body = Buffer.from(await res.arrayBuffer());
    // The end-of-stream frame (flag 2) carries the error.
    expect(body[0]).toBe(2);
    const end = JSON.parse(body.subarray(5).toString("utf8")) as { error?: { code: string; message: string } };
    expect(end.error?.code).toBe("invalid_argument");
    expect(end.error?.message).toContain('WatchJobsRequest.statuses[0]: unknown JobStatus "queued"; accepted: JOB_STATUS_QUEUED');
  });

  test("after the batch: the studio serves and nothing was written", async () => {
    expect(await healthStatus(t.url)).toBe("SERVING");
    expect(tablesDigest(t.dataDir)).toEqual(before);
  });
});

/** Import files (the ModelSource wire JSON) the CLI must refuse as a whole, naming the entry and field. */
const IMPORTS: Array<[label: string, content: string, mentions: string[]]> = [
  ["not JSON", `{"name": "a",`, ["JSON"]],
  ["a number", `42`, []],
  ["file: URL", JSON.stringify({ name: "imp-a", source: { engine: "sd-cpp", files: [{ role: "diffusion-model", filename: "a.gguf", url: "file:///etc/passwd" }] } }), ["url", "file:"]],
  ["traversal file name", JSON.stringify({ name: "imp-a", source: { engine: "sd-cpp", files: [{ role: "diffusion-model", filename: "../../a.gguf", url: "http://127.0.0.1/a" }] } }), ["filename", "../../a.gguf"]],
  ["bad sha256", JSON.stringify({ name: "imp-a", source: { engine: "sd-cpp", files: [{ role: "diffusion-model", filename: "a.gguf", url: "http://127.0.0.1/a", sha256: "123" }] } }), ["sha256", "123"]],
  ["unknown engine", JSON.stringify({ name: "imp-a", source: { engine: "sd-cpp-turbo", files: [] } }), ["engine", "sd-cpp-turbo"]],
  ["unknown key", JSON.stringify({ name: "imp-a", source: { engine: "synthetic", files: [], gpu: "yes" } }), ["gpu"]],
  ["one good entry, one bad", JSON.stringify([
    { name: "imp-good", source: { engine: "synthetic", files: [] } },
    { name: "imp-bad", source: { engine: "synthetic", files: [], cliDefaults: { steps: -1 } } },
  ]), ["steps"]],
];

describe("malformed wire JSON on import (the CLI)", () => {
  for (const [label, content, mentions] of IMPORTS) {
    test(`models import: ${label}`, async () => {
      const file = join(dir, `${label.replace(/\W+/g, "-")}.json`);
      writeFileSync(file, content);
      const r = await runCli(["--server", t.url, "models", "import", file]);
      expect(r.exit).toBe(2);
      for (const m of mentions) expect(r.stderr).toContain(m);
    }, 20_000);
  }

  test("after the imports: nothing was written", async () => {
    expect(await healthStatus(t.url)).toBe("SERVING");
    expect(tablesDigest(t.dataDir)).toEqual(before);
  });
});

// Last: these write to the database the tests above check is unchanged.
describe("enum names over Connect JSON", () => {
  test("the ModelSource wire names (sd-cpp, diffusion-model, ...) are accepted as aliases of the proto names", async () => {
    const source = `{"engine":"sd-cpp","files":[{"role":"diffusion-model","filename":"a.gguf","url":"http://127.0.0.1:9/a"},{"role":"vae","filename":"v.safetensors","url":"http://127.0.0.1:9/v"}]}`;
    const created = await post("RegistryService/CreateModel", `{"name":"alias-model","source":${source}}`);
    expect(created.status).toBe(200);
    const res = await fetch(`${t.url}/studio.v1.RegistryService/GetModel`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `{"name":"alias-model"}`,
    });
    const { model } = (await res.json()) as { model: { source: { engine: string; files: Array<{ role: string }> } } };
    expect(model.source.engine).toBe("MODEL_ENGINE_SD_CPP");
    expect(model.source.files.map((f) => f.role)).toEqual(["MODEL_FILE_ROLE_DIFFUSION_MODEL", "MODEL_FILE_ROLE_VAE"]);
  });

  test("known proto names, numbers and unknown field names still parse (unknown fields are skipped, as before)", async () => {
    const r = await post("JobService/ListJobs", `{"statuses":["JOB_STATUS_QUEUED",4],"someFutureField":true}`);
    expect(r.status).toBe(200);
  });
});
