import { afterEach, describe, expect, test } from "bun:test";
import { describeNoGpu, readInventory } from "../../../worker/gpus/inventory.js";
import { parseNvidiaApps, parseNvidiaGpus } from "../../../worker/gpus/nvidia-smi.js";
import { parseRocmGpus } from "../../../worker/gpus/rocm-smi.js";
import { GpuOutputError } from "../../../worker/gpus/types.js";
import { FAKE_NVIDIA_SMI, FAKE_ROCM_SMI, amdCard, fakeGpus, nvidiaCard } from "./fake-gpus.js";

const MiB = 1024 * 1024;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  delete process.env.FAKE_GPU_STATE;
});

function withGpus(state: Parameters<typeof fakeGpus>[0]) {
  const gpus = fakeGpus(state);
  cleanups.push(gpus.cleanup);
  process.env.FAKE_GPU_STATE = gpus.path;
  return gpus;
}

describe("nvidia-smi's CSV", () => {
  test("one line per GPU, memory in MiB; a name may hold commas", () => {
    const text = "0, GPU-4a1b2c3d-0000-1111-2222-333344445555, NVIDIA GeForce RTX 4090, 24564, 1234\n" +
      "1, GPU-5a1b2c3d-0000-1111-2222-333344445555, NVIDIA A100-SXM4-80GB, Rev 2, 81920, 0\n";
    expect(parseNvidiaGpus(text)).toEqual([
      { index: 0, uuid: "GPU-4a1b2c3d-0000-1111-2222-333344445555", name: "NVIDIA GeForce RTX 4090", vendor: "nvidia", totalBytes: 24564 * MiB, usedBytes: 1234 * MiB },
      { index: 1, uuid: "GPU-5a1b2c3d-0000-1111-2222-333344445555", name: "NVIDIA A100-SXM4-80GB, Rev 2", vendor: "nvidia", totalBytes: 81920 * MiB, usedBytes: 0 },
    ]);
    expect(parseNvidiaGpus("\n")).toEqual([]);
  });

  for (const [what, text] of [
    ["memory the driver does not report", "0, GPU-4a1b2c3d, NVIDIA GH200, [N/A], [N/A]"],
    ["a driver message", "Failed to initialize NVML: Driver/library version mismatch"],
    ["used above total", "0, GPU-4a1b2c3d, NVIDIA T4, 100, 200"],
    ["a uuid that is none", "0, 12345, NVIDIA T4, 15360, 0"],
    ["a GPU twice", "0, GPU-aa, NVIDIA T4, 15360, 0\n0, GPU-bb, NVIDIA T4, 15360, 0"],
  ] as const)
    test(`${what} is unreadable output, named`, () => {
      expect(() => parseNvidiaGpus(text)).toThrow(GpuOutputError);
    });

  test("compute apps: uuid, pid, MiB ([N/A] where the driver does not say)", () => {
    expect(parseNvidiaApps("GPU-aa, 123, 512\nGPU-bb, 456, [N/A]\n")).toEqual([
      { gpuUuid: "GPU-aa", pid: 123, usedBytes: 512 * MiB },
      { gpuUuid: "GPU-bb", pid: 456, usedBytes: undefined },
    ]);
    expect(parseNvidiaApps("")).toEqual([]);
  });
});

describe("rocm-smi's JSON", () => {
  test("cardN entries with their VRAM in bytes; warnings before the JSON are skipped", () => {
    const json = {
      card1: { "Card Series": "AMD Radeon RX 7900 XTX", "Unique ID": "0x1234", "VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "1073741824" },
      card0: { "Card series": "AMD Instinct MI300X", "Unique ID": "N/A", "VRAM Total Memory (B)": "206141652992", "VRAM Total Used Memory (B)": "0" },
      system: { "Driver version": "6.8.5" },
    };
    expect(parseRocmGpus(`WARNING: AMD GPU device(s) is/are in a low-power state\n${JSON.stringify(json)}`)).toEqual([
      { index: 0, uuid: "", name: "AMD Instinct MI300X", vendor: "amd", totalBytes: 206141652992, usedBytes: 0 },
      { index: 1, uuid: "0x1234", name: "AMD Radeon RX 7900 XTX", vendor: "amd", totalBytes: 25753026560, usedBytes: 1073741824 },
    ]);
  });

  test("no JSON, bad JSON or a card without VRAM figures is unreadable output", () => {
    expect(() => parseRocmGpus("ERROR: GPU[0]: unable to read")).toThrow(GpuOutputError);
    expect(() => parseRocmGpus("{not json")).toThrow(GpuOutputError);
    expect(() => parseRocmGpus(JSON.stringify({ card0: { "Card Series": "x" } }))).toThrow(/VRAM Total Memory/);
  });
});

describe("readInventory through the stand-in tools", () => {
  test("NVIDIA cards as the fake prints them, with the processes on them", async () => {
    const cards = [nvidiaCard("NVIDIA GeForce RTX 4090", 24564, 500), nvidiaCard("NVIDIA GeForce RTX 3060", 12288)];
    const gpus = withGpus({ cards });
    const result = await readInventory({ nvidiaSmi: FAKE_NVIDIA_SMI, rocmSmi: FAKE_ROCM_SMI });
    expect(result.vendor).toBe("nvidia");
    expect(result.snapshot.gpus.map((g) => [g.index, g.uuid, g.name, g.totalBytes, g.usedBytes])).toEqual([
      [0, cards[0]!.uuid, "NVIDIA GeForce RTX 4090", 24564 * MiB, 500 * MiB],
      [1, cards[1]!.uuid, "NVIDIA GeForce RTX 3060", 12288 * MiB, 0],
    ]);
    expect(result.snapshot.processes).toEqual([]);
    // Exactly the query, then the processes: nothing else is asked of nvidia-smi.
    expect(gpus.calls().map((c) => c.argv)).toEqual([
      ["--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits"],
      ["--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits"],
    ]);
  });

  test("AMD cards through rocm-smi when there is no nvidia-smi", async () => {
    const card = amdCard("AMD Radeon RX 7900 XTX", 24560, 1000);
    withGpus({ cards: [card] });
    const result = await readInventory({ rocmSmi: FAKE_ROCM_SMI });
    expect(result.vendor).toBe("amd");
    expect(result.snapshot.gpus).toEqual([{ index: 0, uuid: card.uuid, name: "AMD Radeon RX 7900 XTX", vendor: "amd", totalBytes: 24560 * MiB, usedBytes: 1000 * MiB }]);
    expect(result.snapshot.processes).toBeUndefined();
    expect(result.missing).toEqual(["nvidia-smi"]);
  });

  test("a hanging nvidia-smi is killed at the time box: no GPU, one warning naming it", async () => {
    withGpus({ mode: "hang", cards: [nvidiaCard("NVIDIA T4", 15360)] });
    const result = await readInventory({ nvidiaSmi: FAKE_NVIDIA_SMI }, { timeoutMs: 300 });
    expect(result.snapshot.gpus).toEqual([]);
    const log = describeNoGpu(result);
    expect(log.level).toBe("warn");
    expect(log.message).toContain("gave no answer within 300 ms (killed)");
    expect(log.message).toEndWith("running CPU-only");
  });

  test("garbage, a missing driver, no devices, no tools", async () => {
    withGpus({ mode: "garbage", cards: [nvidiaCard("NVIDIA T4", 15360)] });
    let log = describeNoGpu(await readInventory({ nvidiaSmi: FAKE_NVIDIA_SMI }));
    expect(log.level).toBe("warn");
    expect(log.message).toContain("nvidia-smi printed");

    withGpus({ mode: "no-driver", cards: [] });
    log = describeNoGpu(await readInventory({ nvidiaSmi: FAKE_NVIDIA_SMI }));
    expect(log.level).toBe("warn");
    expect(log.message).toBe(
      "nvidia-smi exited with status 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.: running CPU-only",
    );

    withGpus({ mode: "no-devices", cards: [] });
    log = describeNoGpu(await readInventory({ nvidiaSmi: FAKE_NVIDIA_SMI }));
    expect(log).toEqual({ level: "info", why: "nvidia-smi found no GPU", message: "nvidia-smi found no GPU: running CPU-only" });

    log = describeNoGpu(await readInventory({}));
    expect(log.message).toBe("no GPU found: neither nvidia-smi nor rocm-smi is on PATH: running CPU-only (--gpus none skips the look)");

    log = describeNoGpu(await readInventory({ nvidiaSmi: "/nonexistent/nvidia-smi" }));
    expect(log.level).toBe("warn");
    expect(log.message).toContain("cannot run /nonexistent/nvidia-smi");
  });
});
