import { crc32 } from "node:zlib";
import { encodePng, PNG_SIGNATURE } from "../../worker/engines/png.js";

/** The size of every benchmark job's output. */
export const OUTPUT_BYTES = 1024;

/**
 * A valid PNG of exactly `size` bytes: a 4x4 image padded with a private ancillary chunk
 * ("bnCh", which decoders skip) before IEND. The synthetic model's jobs are image jobs, so the
 * bench worker answers with an image/png output that any PNG reader accepts.
 */
export function paddedPng(size = OUTPUT_BYTES, seed = 0): Uint8Array {
  const rgb = new Uint8Array(4 * 4 * 3).map((_, i) => (i * 37 + seed) & 0xff);
  const base = encodePng(4, 4, rgb);
  const iendAt = base.length - 12;
  const padLength = size - base.length - 12;
  if (padLength < 0) throw new RangeError(`a PNG cannot be smaller than ${base.length + 12} bytes here`);
  const pad = new Uint8Array(12 + padLength);
  const view = new DataView(pad.buffer);
  view.setUint32(0, padLength);
  pad.set([0x62, 0x6e, 0x43, 0x68], 4);
  pad.fill(0x2e, 8, 8 + padLength);
  view.setUint32(8 + padLength, crc32(pad.subarray(4, 8 + padLength)));
  const out = new Uint8Array(size);
  out.set(base.subarray(0, iendAt), 0);
  out.set(pad, iendAt);
  out.set(base.subarray(iendAt), iendAt + pad.length);
  return out;
}

/** True when bytes start with the PNG signature. */
export function looksLikePng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** BullMQ's 1 KiB return value: a string of exactly OUTPUT_BYTES ASCII characters. */
export const ONE_KIB_STRING = "x".repeat(OUTPUT_BYTES);
