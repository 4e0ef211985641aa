import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Every unary RPC of RegistryService and JobService driven by `buf curl`, a client
 * no one here wrote, over each protocol the port serves: Connect JSON and gRPC-Web
 * over HTTP/1.1, gRPC over HTTP/2 cleartext.
 */
const ROOT = join(import.meta.dir, "..", "..");
const BUF = join(ROOT, "node_modules", ".bin", "buf");
const PROTOCOLS = [
  { protocol: "connect", extra: [] as string[] },
  { protocol: "grpcweb", extra: [] as string[] },
  { protocol: "grpc", extra: ["--http2-prior-knowledge"] },
];

let t: TestStudio;
let imageDir: string;
let schema: string;
beforeAll(async () => {
  t = await startTestStudio();
  // `buf curl --schema proto` compiles proto/ on every call; the image of the same folder, built once, saves a third of each call.
  imageDir = mkdtempSync(join(tmpdir(), "studio-buf-"));
  schema = join(imageDir, "studio.binpb");
  const build = Bun.spawn([BUF, "build", "proto", "-o", schema], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
  if ((await build.exited) !== 0) throw new Error(`buf build failed: ${await new Response(build.stderr).text()}`);
});
afterAll(async () => {
  await t.stop();
  rmSync(imageDir, { recursive: true, force: true });
});

async function bufCurl(protocol: string, extra: string[], method: string, body: unknown) {
  const proc = Bun.spawn(
    [BUF, "curl", "--schema", schema, "--protocol", protocol, ...extra, "-d", JSON.stringify(body), `${t.url}/studio.v1.${method}`],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const json = exitCode === 0 ? (JSON.parse(stdout) as Record<string, any>) : undefined;
  return { exitCode, json, stderr };
}

describe("buf curl", () => {
  test.concurrent.each(PROTOCOLS)("every unary RPC over $protocol", async ({ protocol, extra }) => {
      const call = async (method: string, body: unknown) => {
        const res = await bufCurl(protocol, extra, method, body);
        if (res.exitCode !== 0) throw new Error(`${method} over ${protocol} exited ${res.exitCode}: ${res.stderr}`);
        return res.json!;
      };
      const name = `curl-${protocol}`;
      expect((await call("RegistryService/ListModels", {})).models.map((m: { name: string }) => m.name)).toContain("z-image-turbo");
      const created = await call("RegistryService/CreateModel", {
        name,
        source: { engine: "MODEL_ENGINE_SYNTHETIC", cliDefaults: { steps: 2 } },
        description: "from buf curl",
      });
      expect(created.model).toMatchObject({ name, enabled: true, source: { engine: "MODEL_ENGINE_SYNTHETIC" } });
      expect((await call("RegistryService/GetModel", { name })).model.description).toBe("from buf curl");
      expect((await call("RegistryService/UpdateModel", { name, description: "edited" })).model.description).toBe("edited");
      expect((await call("RegistryService/VerifyModel", { name })).ok).toBe(true);

      const job = (await call("JobService/CreateJob", {
        model: name,
        task: { image: { prompt: "a lighthouse", seed: "9" } },
        idempotencyKey: `key-${protocol}`,
      })).job;
      expect(job).toMatchObject({ model: name, status: "JOB_STATUS_QUEUED", modelSource: { engine: "MODEL_ENGINE_SYNTHETIC" } });
      expect((await call("JobService/GetJob", { jobId: job.id })).job.task.image.seed).toBe("9");
      expect((await call("JobService/ListJobs", { model: name })).jobs.map((j: { id: string }) => j.id)).toEqual([job.id]);
      const promoted = (await call("JobService/PromoteJob", { jobId: job.id, model: "synthetic" })).job;
      expect(promoted).toMatchObject({ model: "synthetic", promotedFrom: job.id, priority: 100 });
      expect((await call("JobService/CancelJob", { jobId: job.id })).job.status).toBe("JOB_STATUS_CANCELLED");
      expect((await call("JobService/RetryJob", { jobId: job.id })).job.status).toBe("JOB_STATUS_QUEUED");
      // proto3 JSON leaves false out: a disabled model reads back without "enabled".
      expect((await call("RegistryService/SetModelEnabled", { name, enabled: false })).model.enabled).toBeUndefined();
      expect(await call("RegistryService/DeleteModel", { name })).toEqual({});

      const missing = await bufCurl(protocol, extra, "JobService/GetJob", { jobId: "no-such-job" });
      expect(missing.exitCode).not.toBe(0);
      expect(missing.stderr).toContain("not_found");
      const invalid = await bufCurl(protocol, extra, "JobService/CreateJob", { model: "synthetic", task: { image: { prompt: "" } } });
      expect(invalid.stderr).toContain("invalid_argument");
      expect(invalid.stderr).toContain("task.image.prompt");
  }, 30_000);
});
