import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { GpuDeviceSchema, GpuVendor } from "../../gen/studio/v1/worker_service_pb.js";
import { h2Transport, SimWorker } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { runCli } from "./run-cli.js";

const GiB = 1024 ** 3;
let t: TestStudio;
let worker: SimWorker;
beforeAll(async () => {
  t = await startTestStudio();
  worker = await SimWorker.connect(h2Transport(t.url), {
    name: "gpu-box",
    engines: [ModelEngine.LLAMA_CPP],
    slots: 2,
    gpus: [
      create(GpuDeviceSchema, {
        index: 0,
        uuid: "GPU-aaaa",
        name: "NVIDIA GeForce RTX 4090",
        vendor: GpuVendor.NVIDIA,
        totalMemoryBytes: BigInt(24 * GiB),
        freeMemoryBytes: BigInt(18 * GiB),
        workerMemoryBytes: BigInt(5 * GiB),
        slots: 1,
      }),
      create(GpuDeviceSchema, { index: 2, uuid: "GPU-bbbb", name: "NVIDIA RTX A2000", vendor: GpuVendor.NVIDIA, totalMemoryBytes: BigInt(6 * GiB), freeMemoryBytes: BigInt(6 * GiB), slots: 1 }),
    ],
  });
});
afterAll(async () => {
  await worker.close();
  await t.stop();
});

const env = () => ({ STUDIO_SERVER: t.url });

describe("the CLI shows GPUs and GPU memory", () => {
  test("workers list: each GPU with its free memory and busy slots; --json carries them whole", async () => {
    const table = await runCli(["workers", "list"], env());
    expect(table.exit).toBe(0);
    expect(table.stdout).toContain(
      "0 NVIDIA GeForce RTX 4090: 18 GiB of 24 GiB free (5.0 GiB held by its engines), 0/1 slot busy; 2 NVIDIA RTX A2000: 6.0 GiB of 6.0 GiB free, 0/1 slot busy",
    );
    const json = JSON.parse((await runCli(["--json", "workers", "list"], env())).stdout);
    expect(json.workers[0].gpus[0]).toMatchObject({ uuid: "GPU-aaaa", vendor: "GPU_VENDOR_NVIDIA", totalMemoryBytes: String(24 * GiB) });
  });

  test("models get says what a model needs and whether it is an estimate", async () => {
    const source = { engine: "llama-cpp", files: [{ role: "model", url: "http://127.0.0.1:9/m.gguf", filename: "m.gguf", approxBytes: 4 * GiB }], cliDefaults: {} };
    const made = await runCli(["models", "add", "guessed", "--source", "-"], env(), JSON.stringify(source));
    expect(made.stderr).toBe("");
    expect(made.exit).toBe(0);
    const got = await runCli(["models", "get", "guessed"], env());
    expect(got.stdout).toContain("gpu memory:  5.3 GiB (estimated from the files' sizes)");
  });
});
