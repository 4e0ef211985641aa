import fs from "node:fs/promises";
import { z } from "zod";

/**
 * The sidecar next to a partial file: which server version the bytes came from
 * and how far each range got. It is written (tmp + rename) only after the bytes
 * it counts are written, so after a crash it never claims more than the file
 * holds. It is stored JSON read back after a restart, so it is parsed with zod.
 */
const PartSchema = z.object({
  start: z.number().int().nonnegative(),
  /** Exclusive end; undefined when the total size is unknown (single stream only). */
  end: z.number().int().nonnegative().optional(),
  /** Absolute offset of the next byte this part writes. */
  next: z.number().int().nonnegative(),
});
export type PartState = z.infer<typeof PartSchema>;

const PartialStateSchema = z.object({
  version: z.literal(1),
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  totalBytes: z.number().int().nonnegative().optional(),
  acceptsRanges: z.boolean(),
  parts: z.array(PartSchema).min(1),
});
export type PartialState = z.infer<typeof PartialStateSchema>;

/** Reads a sidecar; undefined when missing, corrupt, or for another URL (the partial is then started over). */
export async function readPartialState(path: string, url: string): Promise<PartialState | undefined> {
  try {
    const parsed = PartialStateSchema.safeParse(JSON.parse(await fs.readFile(path, "utf8")));
    if (!parsed.success || parsed.data.url !== url) return undefined;
    const consistent = parsed.data.parts.every((p) => p.next >= p.start && (p.end === undefined || p.next <= p.end));
    return consistent ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

let tmpCounter = 0;

/** Writes a sidecar atomically. */
export async function writePartialState(path: string, state: PartialState): Promise<void> {
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`;
  try {
    await fs.writeFile(tmp, JSON.stringify(state));
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

const PIECE_ALIGNMENT = 4096;

/** Bytes already on disk according to the state. */
export function bytesDone(state: PartialState): number {
  return state.parts.reduce((sum, p) => sum + (p.next - p.start), 0);
}

/**
 * Splits [0, total) into pieces for `connections` parallel connections. There
 * are several pieces per connection (up to 8, each at least 8 MiB unless that
 * leaves fewer pieces than connections), fetched in file order: the hash
 * cursor, which must go in order, then trails the downloads by a few pieces
 * instead of waiting for whole quarters of the file to be read back at the end.
 * Pieces start on multiples of 4 KiB, so their blocks can be written directly
 * (PartialFile).
 */
export function splitParts(total: number, connections: number): PartState[] {
  const minPiece = 32 * 1024 * 1024;
  const exact = Math.max(1, Math.ceil(total / (connections * 8)), Math.min(minPiece, Math.ceil(total / connections)));
  const size = Math.ceil(exact / PIECE_ALIGNMENT) * PIECE_ALIGNMENT;
  const parts: PartState[] = [];
  for (let start = 0; start < total; start += size) parts.push({ start, end: Math.min(total, start + size), next: start });
  return parts.length > 0 ? parts : [{ start: 0, end: 0, next: 0 }];
}
