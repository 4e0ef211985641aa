import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { ModelEngine, ModelFileRole, ModelSourceSchema, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const FILE_BYTES = 1234;
const RANGED_TOTAL = 5000;
let files: http.Server;
let base: string;
const hanging: http.ServerResponse[] = [];

beforeAll(async () => {
  files = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    switch (path) {
      case "/file.gguf":
        res.writeHead(200, { "content-length": String(FILE_BYTES) });
        return res.end(req.method === "HEAD" ? undefined : Buffer.alloc(FILE_BYTES));
      case "/hop1":
        res.writeHead(302, { location: "/hop2" });
        return res.end();
      case "/hop2":
        res.writeHead(301, { location: `${base}/file.gguf` });
        return res.end();
      case "/no-head.gguf":
        if (req.method === "HEAD") {
          res.writeHead(405);
          return res.end();
        }
        if (req.headers.range !== "bytes=0-0") {
          res.writeHead(400);
          return res.end();
        }
        res.writeHead(206, { "content-range": `bytes 0-0/${RANGED_TOTAL}`, "content-length": "1" });
        return res.end("x");
      case "/to-ftp":
        res.writeHead(302, { location: "ftp://127.0.0.1/file.gguf" });
        return res.end();
      case "/loop":
        res.writeHead(302, { location: "/loop" });
        return res.end();
      case "/hang.gguf":
        hanging.push(res);
        return;
      default:
        res.writeHead(404);
        return res.end();
    }
  });
  await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  files.closeAllConnections();
  await new Promise((resolve) => files.close(resolve));
});

const sd = (urls: string[], approx?: bigint): ModelSource =>
  create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: urls.map((url, i) => ({
      role: i === 0 ? ModelFileRole.DIFFUSION_MODEL : ModelFileRole.LORA,
      url,
      filename: `f${i}.gguf`,
      approxBytes: approx,
    })),
    cliDefaults: { steps: 8 },
  });

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

let t: TestStudio;
let reg: Client<typeof RegistryService>;
beforeEach(async () => {
  t = await startTestStudio({ verifyUrlTimeoutMs: 300 });
  reg = t.client(RegistryService);
});
afterEach(() => t.stop());

describe("registry CRUD", () => {
  test("a fresh studio has the seeded rows, each a valid source", async () => {
    const { models } = await reg.listModels({});
    expect(models.map((m) => m.name)).toEqual(["qwen3-0.6b", "synthetic", "z-image-turbo"]);
    const z = models.find((m) => m.name === "z-image-turbo")!;
    expect(z.source!.engine).toBe(ModelEngine.SD_CPP);
    expect(z.source!.files.map((f) => [f.role, f.url])).toEqual([
      [ModelFileRole.DIFFUSION_MODEL, "https://huggingface.co/leejet/Z-Image-Turbo-GGUF/resolve/main/z_image_turbo-Q4_K.gguf"],
      [ModelFileRole.TEXT_ENCODER, "https://huggingface.co/unsloth/Qwen3-4B-Instruct-2507-GGUF/resolve/main/Qwen3-4B-Instruct-2507-Q4_K_M.gguf"],
      [ModelFileRole.VAE, "https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors"],
    ]);
    expect(z.source!.files.every((f) => f.approxBytes! > 0n && f.sha256 === undefined)).toBe(true);
    const d = z.source!.cliDefaults!;
    expect([d.cfgScale, d.steps, d.width, d.height, d.samplingMethod]).toEqual([1, 8, 1024, 1024, "euler"]);
    const q = models.find((m) => m.name === "qwen3-0.6b")!;
    expect(q.source!.engine).toBe(ModelEngine.LLAMA_CPP);
    expect(q.source!.files.length).toBe(1);
    expect(models.find((m) => m.name === "synthetic")!.source!.files).toEqual([]);
  });

  test("create, get, update, enable/disable, delete", async () => {
    const created = (await reg.createModel({ name: "my-model", source: sd([`${base}/file.gguf`]), description: "d" })).model!;
    expect(created.enabled).toBe(true);
    expect((await reg.getModel({ name: "my-model" })).model).toEqual(created);
    const updated = (await reg.updateModel({ name: "my-model", description: "new" })).model!;
    expect(updated.description).toBe("new");
    expect(updated.source).toEqual(created.source);
    const resourced = (await reg.updateModel({ name: "my-model", source: sd([`${base}/other.gguf`]) })).model!;
    expect(resourced.source!.files[0]!.url).toBe(`${base}/other.gguf`);
    expect((await reg.setModelEnabled({ name: "my-model", enabled: false })).model!.enabled).toBe(false);
    expect((await reg.listModels({ enabledOnly: true })).models.map((m) => m.name)).not.toContain("my-model");
    await reg.deleteModel({ name: "my-model" });
    expect((await failure(reg.getModel({ name: "my-model" }))).code).toBe(Code.NotFound);
  });

  test("errors carry the right code and name the field", async () => {
    await reg.createModel({ name: "dup", source: sd([`${base}/file.gguf`]), enabled: false });
    expect((await failure(reg.createModel({ name: "dup", source: sd([`${base}/file.gguf`]) }))).code).toBe(Code.AlreadyExists);
    for (const call of [
      reg.getModel({ name: "ghost" }),
      reg.updateModel({ name: "ghost", description: "x" }),
      reg.deleteModel({ name: "ghost" }),
      reg.setModelEnabled({ name: "ghost", enabled: true }),
      reg.verifyModel({ target: { case: "name", value: "ghost" } }),
    ])
      expect((await failure(call)).code).toBe(Code.NotFound);
    const cases: [Promise<unknown>, string][] = [
      [reg.createModel({ name: "", source: sd([`${base}/a`]) }), "name: must not be empty"],
      [reg.createModel({ name: "-bad", source: sd([`${base}/a`]) }), "name: must start with a letter or digit"],
      [reg.createModel({ name: "x".repeat(129), source: sd([`${base}/a`]) }), "name: must be at most 128"],
      [reg.createModel({ name: "ok" }), "source: is required"],
      [reg.createModel({ name: "ok", source: sd(["ftp://h/a"]) }), "source.files[0].url"],
      [reg.createModel({ name: "ok", source: create(ModelSourceSchema, { engine: ModelEngine.LLAMA_CPP }) }), "source.files"],
      [reg.createModel({ name: "ok", source: sd([`${base}/a`]), description: "d".repeat(5000) }), "description"],
      [reg.updateModel({ name: "dup" }), "source or description"],
      [reg.updateModel({ name: "dup", source: create(ModelSourceSchema, { engine: ModelEngine.UNSPECIFIED }) }), "source.engine"],
      [reg.verifyModel({}), "target"],
    ];
    for (const [call, text] of cases) {
      const err = await failure(call);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(text);
    }
    expect((await reg.listModels({})).models.length).toBe(4);
  });
});

describe("VerifyModel against a local HTTP server", () => {
  test("200, a 302/301 chain, 404, HEAD refused then a ranged GET", async () => {
    const res = await reg.verifyModel({
      target: {
        case: "source",
        value: sd([`${base}/file.gguf`, `${base}/hop1`, `${base}/missing.gguf`, `${base}/no-head.gguf`], BigInt(FILE_BYTES)),
      },
    });
    const [direct, chain, missing, ranged] = res.files;
    expect(res.ok).toBe(false);
    expect(direct).toMatchObject({ reachable: true, httpStatus: 200, finalUrl: `${base}/file.gguf`, sizeBytes: 1234n, sizeMatches: true, error: "" });
    expect(chain).toMatchObject({ reachable: true, httpStatus: 200, finalUrl: `${base}/file.gguf`, sizeBytes: 1234n, sizeMatches: true });
    expect(missing).toMatchObject({ reachable: false, httpStatus: 404, error: "HTTP 404" });
    expect(ranged).toMatchObject({ reachable: true, httpStatus: 206, sizeBytes: 5000n, approxBytes: 1234n, sizeMatches: false });
    expect(ranged!.error).toContain("size 5000 differs from approx_bytes 1234");
  });

  test("a saved model verifies by name and is ok when every file is reachable", async () => {
    await reg.createModel({ name: "good", source: sd([`${base}/file.gguf`, `${base}/hop1`]) });
    const res = await reg.verifyModel({ target: { case: "name", value: "good" } });
    expect(res.ok).toBe(true);
    expect(res.files.map((f) => f.sizeMatches)).toEqual([true, true]);
    const synthetic = await reg.verifyModel({ target: { case: "name", value: "synthetic" } });
    expect(synthetic).toMatchObject({ ok: true, files: [] });
  });

  test("refuses a redirect to ftp:, stops redirect loops, and times out a silent server", async () => {
    const res = await reg.verifyModel({
      target: { case: "source", value: sd([`${base}/to-ftp`, `${base}/loop`, `${base}/hang.gguf`]) },
    });
    const [ftp, loop, hang] = res.files;
    expect(ftp).toMatchObject({ reachable: false, httpStatus: 302 });
    expect(ftp!.error).toContain("refused to follow a redirect to ftp:");
    expect(loop!.reachable).toBe(false);
    expect(loop!.error).toContain("more than 10 redirects");
    expect(hang).toMatchObject({ reachable: false, httpStatus: 0, error: "no answer within 300 ms" });
  });
});
