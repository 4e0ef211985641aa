import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { Locator } from "playwright-core";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { GpuDeviceSchema, GpuVendor } from "../../gen/studio/v1/worker_service_pb.js";
import { h2Transport, SimWorker } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { launchBrowser, screenshot, type TestBrowser } from "./browser.js";

const GiB = 1024 ** 3;

async function expectText(locator: Locator, pattern: RegExp) {
  await locator.filter({ hasText: pattern }).first().waitFor();
}

/** The admin page on an open studio, with a worker reporting two GPUs (one running a job) and a model that states its GPU memory. */
describe("GPUs on the admin page", () => {
  let t: TestStudio;
  let b: TestBrowser;
  let worker: SimWorker;
  let jobId = "";

  beforeAll(async () => {
    t = await startTestStudio();
    await t.client(RegistryService).createModel({
      name: "llama-8b",
      source: {
        engine: ModelEngine.LLAMA_CPP,
        files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/llama-8b.gguf", filename: "llama-8b.gguf", approxBytes: BigInt(5 * GiB) }],
        vramBytes: BigInt(7 * GiB),
      },
    });
    worker = await SimWorker.connect(h2Transport(t.url), {
      name: "gpu-box",
      engines: [ModelEngine.LLAMA_CPP],
      slots: 2,
      gpus: [
        create(GpuDeviceSchema, {
          index: 0,
          uuid: "GPU-8f1e6b2a-0000-4000-8000-000000000001",
          name: "NVIDIA GeForce RTX 4090",
          vendor: GpuVendor.NVIDIA,
          totalMemoryBytes: BigInt(24 * GiB),
          freeMemoryBytes: BigInt(16 * GiB),
          workerMemoryBytes: BigInt(7 * GiB),
          slots: 1,
        }),
        create(GpuDeviceSchema, {
          index: 1,
          uuid: "GPU-8f1e6b2a-0000-4000-8000-000000000002",
          name: "NVIDIA GeForce RTX 3060",
          vendor: GpuVendor.NVIDIA,
          totalMemoryBytes: BigInt(12 * GiB),
          freeMemoryBytes: BigInt(12 * GiB),
          slots: 1,
        }),
      ],
    });
    const { job } = await t.client(JobService).createJob({ model: "llama-8b", task: { kind: { case: "text", value: { prompt: "hello" } } } });
    jobId = job!.id;
    expect((await worker.nextOffer()).gpuIndex).toBe(1);
    b = await launchBrowser({ width: 1280, height: 800 });
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await worker?.close();
    await t?.stop();
  });

  test("Workers lists each GPU with its memory and slots; the job and the model say the GPU memory counted", async () => {
    const page = b.page;
    await page.goto(`${t.url}/#/workers`);
    const row = page.locator('tr[data-worker="gpu-box"]');
    await row.waitFor();
    const first = row.locator('li[data-gpu="0"]');
    await expectText(first, /0 · NVIDIA GeForce RTX 4090/);
    await expectText(first, /16 GiB free of 24 GiB · 7\.0 GiB held by its engines · 0 of 1 slot in use/);
    await expectText(row.locator('li[data-gpu="1"]'), /12 GiB free of 12 GiB · 1 of 1 slot in use/);
    expect(await first.getAttribute("title")).toBe("GPU-8f1e6b2a-0000-4000-8000-000000000001");
    expect(await row.locator("meter").count()).toBe(2);
    await screenshot(page, "workers-gpus");

    await page.goto(`${t.url}/#/jobs/${jobId}`);
    await expectText(page.locator("dd"), /^7\.0 GiB$/);
    await page.goto(`${t.url}/#/models`);
    await expectText(page.locator('tr[data-model="llama-8b"] [data-vram]'), /^GPU: 7\.0 GiB$/);
    expect(b.pageErrors).toEqual([]);
  }, 30_000);
});
