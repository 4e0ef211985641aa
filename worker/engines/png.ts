import { crc32, deflateSync } from "node:zlib";

/** The eight bytes every PNG starts with. */
export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes 8-bit RGB pixels (row-major, 3 bytes a pixel) as a PNG with IHDR, one IDAT and IEND.
 * Deterministic: the same pixels always give the same bytes.
 */
export function encodePng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = new Uint8Array(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  const parts = [PNG_SIGNATURE, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw, { level: 6 })), chunk("IEND", new Uint8Array())];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Why bytes are not a complete PNG, or undefined when they are: the signature, an IHDR chunk first,
 * well-formed chunk lengths with good CRCs, and an IEND chunk at the very end. A truncated file fails here.
 */
export function pngProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length < PNG_SIGNATURE.length || PNG_SIGNATURE.some((b, i) => bytes[i] !== b))
    return "does not start with the PNG signature";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = PNG_SIGNATURE.length;
  let first = true;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) return `is truncated inside a chunk header at byte ${at}`;
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) return `is truncated inside the ${type} chunk at byte ${at}`;
    if (first && type !== "IHDR") return `starts with a ${type} chunk, not IHDR`;
    first = false;
    const stored = view.getUint32(at + 8 + length);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== stored) return `has a bad CRC in the ${type} chunk`;
    at += 12 + length;
    if (type === "IEND") return at === bytes.length ? undefined : "has bytes after IEND";
  }
  return first ? "has no IHDR chunk" : "has no IEND chunk (truncated)";
}
