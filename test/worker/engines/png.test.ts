import { describe, expect, test } from "bun:test";
import * as zlib from "node:zlib";
import { encodePng, pngProblem } from "../../../worker/engines/png.js";

/** Walks the chunks and checks each CRC with zlib's CRC-32 (the encoder's too, so the IEND test below pins it to the spec). */
function chunksWithIndependentCrc(png: Uint8Array) {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Array<{ type: string; crcOk: boolean }> = [];
  for (let at = 8; at < png.length; ) {
    const length = view.getUint32(at);
    const body = png.subarray(at + 4, at + 8 + length);
    out.push({ type: String.fromCharCode(...body.subarray(0, 4)), crcOk: zlib.crc32(body) === view.getUint32(at + 8 + length) });
    at += 12 + length;
  }
  return out;
}

describe("PNG encoding", () => {
  test("the IEND chunk ends with the CRC the PNG specification gives for it (ae426082)", () => {
    const png = encodePng(1, 1, new Uint8Array(3));
    expect(Buffer.from(png.subarray(-4)).toString("hex")).toBe("ae426082");
  });

  test("encoded PNGs carry CRCs that an independent CRC-32 accepts, and pixel data that inflates back", () => {
    const rgb = new Uint8Array(4 * 3 * 3).map((_, i) => i * 7);
    const png = encodePng(4, 3, rgb);
    expect(chunksWithIndependentCrc(png)).toEqual([
      { type: "IHDR", crcOk: true },
      { type: "IDAT", crcOk: true },
      { type: "IEND", crcOk: true },
    ]);
    expect(pngProblem(png)).toBeUndefined();
    const idatLength = new DataView(png.buffer).getUint32(8 + 25);
    const raw = zlib.inflateSync(png.subarray(8 + 25 + 8, 8 + 25 + 8 + idatLength));
    expect(raw.length).toBe(3 * (4 * 3 + 1));
    expect([...raw.subarray(1, 13)]).toEqual([...rgb.subarray(0, 12)]);
  });

  test("a flipped byte is caught as a bad CRC", () => {
    const png = encodePng(2, 2, new Uint8Array(12).fill(9));
    png[20] = png[20]! ^ 1;
    expect(pngProblem(png)).toBe("has a bad CRC in the IHDR chunk");
  });
});
