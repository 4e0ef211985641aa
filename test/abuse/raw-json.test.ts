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
  ["RegistryService/CreateModel", `{"name":"x","source":{"engine":"ENGINE_NOPE"}}`, ["source.engine"]],
  ["RegistryService/CreateModel", `{"name":"x","source":${sdFile("").replace("MODEL_FILE_ROLE_DIFFUSION_MODEL", "MODEL_FILE_ROLE_NOPE")}}`, ["source.files[0].role"]],
  ["RegistryService/VerifyModel", `{"name":"synthetic","source":{"engine":"MODEL_ENGINE_SYNTHETIC"}}`, ["VerifyModelRequest.target"]],
  ["TokenService/CreateToken", `{"name":"x","role":"TOKEN_ROLE_GOD"}`, ["role"]],
  ["TokenService/CreateToken", `{"name":["x"],"role":"TOKEN_ROLE_CLIENT"}`, ["CreateTokenRequest.name"]],
  ["WorkerService/ClaimJob", `{"workerName":"w","waitMs":-1,"engines":["MODEL_ENGINE_SYNTHETIC"]}`, ["ClaimJobRequest.wait_ms", "-1"]],
  ["WorkerService/ClaimJob", `{"workerName":"w","engines":["MODEL_ENGINE_NOPE"]}`, ["engines"]],
  ["WorkerService/CompleteJob", `{"jobId":"x","leaseId":"y","outputs":[{"data":"%%%not base64"}]}`, ["OutputData.data"]],
  ["WorkerService/Heartbeat", `{"leaseIds":"abc"}`, ["HeartbeatRequest.lease_ids"]],
];

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

  // Found by this suite: unknown enum names in Connect JSON are dropped (the adapter parses with
  // ignoreUnknownFields), so a filter naming an unknown status widens to every job instead of failing.
  test.todo("ListJobs with an unknown status name over Connect JSON is refused (today: ignored, lists every job)");

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
