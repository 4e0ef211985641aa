import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReflectionServices, reflectionMessages } from "../../server/ops/grpc-reflection.js";
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

/** The README's `bunx buf curl` lines (continuations joined), as a reader would paste them. */
function readmeBufCurlCommands(): string[] {
  const text = readFileSync(join(ROOT, "README.md"), "utf8").replace(/\\\n\s*/g, "");
  return text.split("\n").filter((line) => line.startsWith("bunx buf curl "));
}

/** Runs a command line through bash, as a person's terminal would; `url` replaces the README's default address. */
async function asWritten(command: string, url: string) {
  const proc = Bun.spawn(["bash", "-c", command.replaceAll("http://127.0.0.1:8080", url)], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

describe("server reflection", () => {
  test("the README's buf curl commands work as written, without the proto files", async () => {
    const commands = readmeBufCurlCommands();
    expect(commands.length).toBe(3);
    // One after another, as a reader runs them: the list must see the job just created.
    const runs = [];
    for (const c of commands) runs.push(await asWritten(c, t.url));
    const [list, createJob, listJobs] = runs;
    for (const run of [list, createJob, listJobs]) expect(run).toMatchObject({ exitCode: 0, stderr: "" });
    expect(list!.stdout.trim().split("\n")).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "studio.v1.JobService",
      "studio.v1.RegistryService",
      "studio.v1.TokenService",
      "studio.v1.WorkerService",
    ]);
    const job = JSON.parse(createJob!.stdout).job;
    expect(job).toMatchObject({ model: "synthetic", status: "JOB_STATUS_QUEUED", task: { image: { prompt: "a fox" } } });
    expect(JSON.parse(listJobs!.stdout).jobs.map((j: { id: string }) => j.id)).toContain(job.id);
  }, 30_000);

  test("v1alpha answers too, every method is listed, and with tokens on reflection is open while the calls are not", async () => {
    const locked = await startTestStudio({ adminToken: `reflect-admin-${"r".repeat(32)}` });
    try {
      const alpha = await asWritten(`${BUF} curl --reflect-protocol grpc-v1alpha --list-methods ${locked.url}`, locked.url);
      expect(alpha.exitCode).toBe(0);
      const methods = alpha.stdout.trim().split("\n");
      for (const m of ["studio.v1.JobService/WatchJobs", "studio.v1.WorkerService/Session", "studio.v1.TokenService/CreateToken", "grpc.health.v1.Health/Check"])
        expect(methods).toContain(m);
      const refused = await asWritten(`${BUF} curl --protocol grpc --http2-prior-knowledge -d '{}' ${locked.url}/studio.v1.JobService/ListJobs`, locked.url);
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toContain("unauthenticated");
      const allowed = await asWritten(
        `${BUF} curl -H 'Authorization: Bearer reflect-admin-${"r".repeat(32)}' -d '{"name":"synthetic"}' ${locked.url}/studio.v1.RegistryService/GetModel`,
        locked.url,
      );
      expect(allowed.exitCode).toBe(0);
      expect(JSON.parse(allowed.stdout).model.name).toBe("synthetic");
    } finally {
      await locked.stop();
    }
  }, 30_000);

  test("files by name and by symbol come with their imports; unknown names are an error_response on a stream that goes on", async () => {
    for (const service of ReflectionServices) {
      const { request } = reflectionMessages(service);
      const client = createClient(service, t.grpcTransport()) as unknown as {
        serverReflectionInfo(reqs: AsyncIterable<unknown>): AsyncIterable<Record<string, any>>;
      };
      const ask = (messageRequest: { case: string; value: unknown }) => create(request, { host: "", messageRequest } as never);
      async function* requests() {
        yield ask({ case: "fileContainingSymbol", value: "studio.v1.JobService.CreateJob" });
        yield ask({ case: "fileContainingSymbol", value: "studio.v1.NoSuchThing" });
        yield ask({ case: "fileByFilename", value: "studio/v1/job.proto" });
        yield ask({ case: "allExtensionNumbersOfType", value: "studio.v1.Job" });
      }
      const answers: Array<Record<string, any>> = [];
      for await (const res of client.serverReflectionInfo(requests())) answers.push(res.messageResponse);
      const names = (a: Record<string, any>) =>
        (a.value.fileDescriptorProto as Uint8Array[]).map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
      expect(answers.map((a) => a.case)).toEqual(["fileDescriptorResponse", "errorResponse", "fileDescriptorResponse", "allExtensionNumbersResponse"]);
      const forMethod = names(answers[0]!);
      expect(forMethod[0]).toBe("studio/v1/job_service.proto");
      expect(forMethod).toEqual(expect.arrayContaining(["studio/v1/job.proto", "studio/v1/model.proto", "google/protobuf/timestamp.proto"]));
      expect(new Set(forMethod).size).toBe(forMethod.length);
      expect(answers[1]!.value).toMatchObject({ errorCode: 5, errorMessage: 'symbol "studio.v1.NoSuchThing" is not served here' });
      expect(names(answers[2]!)[0]).toBe("studio/v1/job.proto");
      expect(answers[3]!.value).toMatchObject({ baseTypeName: "studio.v1.Job", extensionNumber: [] });
    }
  }, 30_000);
});
