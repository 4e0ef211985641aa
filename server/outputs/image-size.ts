/**
 * The pixel size of an image output, read from its first bytes (the studio reports what the bytes
 * say, not what the task asked: sd-cli rounds a size up to its model's multiple). PNG only, the
 * one image type the engines write; undefined for anything else or a header that does not parse.
 */
export function imageSize(mimeType: string, head: Uint8Array): { width: number; height: number } | undefined {
  if (mimeType !== "image/png" || head.byteLength < 24) return undefined;
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (signature.some((b, i) => head[i] !== b)) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, 24);
  // The first chunk must be IHDR: length 13, then the type, then width and height.
  if (view.getUint32(8) !== 13 || String.fromCharCode(...head.subarray(12, 16)) !== "IHDR") return undefined;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  return width > 0 && height > 0 ? { width, height } : undefined;
}
