import { describe, expect, test } from "bun:test";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { encodePng, pngProblem, sdCliArgs, sdOutputPaths } from "../../../worker/engines/index.js";
import { SD_MAX_PENDING_CHARS, SdOutputSplitter, parseSdSegment } from "../../../worker/engines/sd-cli-output.js";
import { imageTask, sdSource } from "./helpers.js";

describe("sd-cli output parsing", () => {
  test("bar redraws split across chunks come out whole, rates in steps per second", () => {
    const segments: string[] = [];
    const splitter = new SdOutputSplitter((s) => segments.push(s));
    const bar = (step: number, rate: string) => `\r  |=====>            | ${step}/8 - ${rate}\x1b[K`;
    const text = `[INFO ] stable-diffusion.cpp:5679 - generating image: 1/2 - seed 42\n${bar(1, "1.25s/it")}${bar(2, "4.00it/s")}`;
    for (let i = 0; i < text.length; i += 7) splitter.push(text.slice(i, i + 7));
    splitter.end();
    const parsed = segments.map(parseSdSegment).filter(Boolean);
    expect(parsed).toEqual([
      { log: { level: "INFO", location: "stable-diffusion.cpp:5679", message: "generating image: 1/2 - seed 42" } },
      { bar: { step: 1, steps: 8, rate: 0.8 } },
      { bar: { step: 2, steps: 8, rate: 4 } },
    ]);
  });

  test("output with no newline or carriage return is bounded: only the tail of the pending segment is kept", () => {
    const segments: string[] = [];
    const splitter = new SdOutputSplitter((s) => segments.push(s));
    const chunk = 16 * 1024;
    for (let i = 0; i < 64; i++) splitter.push("a".repeat(chunk)); // 1 MiB with no line end
    for (let i = 0; i < 8; i++) splitter.push("b".repeat(chunk));
    splitter.push("END\n");
    splitter.push(`\r  |=====>            | 3/8 - 2.00it/s\x1b[K`);
    splitter.end();
    segments.splice(0, segments.length, ...segments.filter((s) => s !== ""));
    expect(segments).toHaveLength(2);
    expect(segments[0]!.length).toBeLessThanOrEqual(SD_MAX_PENDING_CHARS + "END".length);
    expect(segments[0]!.endsWith("bEND")).toBe(true);
    expect(segments[0]!.includes("a")).toBe(false);
    expect(parseSdSegment(segments[1]!)).toEqual({ bar: { step: 3, steps: 8, rate: 2 } });
  });

  test("log lines with padded line numbers, and plain text", () => {
    expect(parseSdSegment("[INFO ] model.cpp:626  - load sd-v1-4.ckpt using checkpoint format")).toEqual({
      log: { level: "INFO", location: "model.cpp:626", message: "load sd-v1-4.ckpt using checkpoint format" },
    });
    expect(parseSdSegment("[ERROR] main.cpp:702 - generate failed")).toEqual({
      log: { level: "ERROR", location: "main.cpp:702", message: "generate failed" },
    });
    expect(parseSdSegment("something else")).toEqual({ text: "something else" });
    // Two sd-cli threads logging at once (tag and text are two writes, stderr unbuffered).
    expect(parseSdSegment("[ERROR] [ERROR] model_loader.cpp:1172 - read tensor data failed: 'a.gguf'")).toEqual({
      log: { level: "ERROR", location: "model_loader.cpp:1172", message: "read tensor data failed: 'a.gguf'" },
    });
    expect(parseSdSegment("model_loader.cpp:1172 - read tensor data failed: 'a.gguf'")).toEqual({
      log: { level: "", location: "model_loader.cpp:1172", message: "read tensor data failed: 'a.gguf'" },
    });
    expect(parseSdSegment("  |#####          | 5/52 - 158.20MB/s")).toEqual({ load: { done: 5, total: 52 } });
    expect(parseSdSegment("\x1b[K  ")).toBeUndefined();
  });
});

describe("sdCliArgs", () => {
  test("a single-file model, defaults only, no seed and no negative prompt", () => {
    const source = sdSource([{ role: ModelFileRole.MODEL, filename: "sd.gguf" }], { steps: 20 });
    const files = [{ role: ModelFileRole.MODEL, filename: "sd.gguf", path: "/w/models/sd.gguf" }];
    const task = imageTask({ prompt: "p", batchCount: 2 }).kind.value as never;
    expect(sdCliArgs({ task, source, files, workDir: "/w", extraArgs: ["--vae-tiling"] })).toEqual([
      "--model", "/w/models/sd.gguf", "-p", "p", "-b", "2", "--steps", "20", "-o", "/w/out.png", "--vae-tiling",
    ]);
    expect(sdOutputPaths("/w", 2)).toEqual(["/w/out_0.png", "/w/out_1.png"]);
    expect(sdOutputPaths("/w", 1)).toEqual(["/w/out.png"]);
  });
});

describe("pngProblem", () => {
  const png = encodePng(2, 2, new Uint8Array(12).fill(200));
  test("accepts a complete PNG and names what is wrong with broken ones", () => {
    expect(pngProblem(png)).toBeUndefined();
    expect(pngProblem(png.subarray(0, png.length - 12))).toBe("has no IEND chunk (truncated)");
    expect(pngProblem(png.subarray(0, 50))).toContain("is truncated inside the IDAT chunk");
    const flipped = png.slice();
    flipped[30] = flipped[30]! ^ 0xff;
    expect(pngProblem(flipped)).toContain("bad CRC");
    expect(pngProblem(new TextEncoder().encode("GIF89a"))).toBe("does not start with the PNG signature");
  });
});
