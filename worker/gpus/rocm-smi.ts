import { z } from "zod";
import { GpuOutputError, type GpuReading } from "./types.js";

/** The inventory query: product names, VRAM totals and use in bytes, unique ids, as JSON. */
export const ROCM_QUERY = ["--showproductname", "--showmeminfo", "vram", "--showuniqueid", "--json"] as const;

/** rocm-smi --json: {"card0": {"Card Series": "...", "VRAM Total Memory (B)": "...", ...}, "system": {...}}; every value a string. */
const RocmJson = z.record(z.string(), z.record(z.string(), z.union([z.string(), z.number()])));

const bytes = (v: string | number | undefined) => (v === undefined ? undefined : /^\d+$/.test(String(v).trim()) ? Number(String(v).trim()) : undefined);

/**
 * Reads ROCM_QUERY's output. rocm-smi may print warnings before the JSON, so it is read from the
 * first "{". Each "cardN" entry is a GPU with index N; names come from "Card Series" (older
 * releases: "Card series"), ids from "Unique ID" ("N/A" reads as none). Anything unreadable is a
 * GpuOutputError naming what is wrong.
 */
export function parseRocmGpus(text: string): GpuReading[] {
  const start = text.indexOf("{");
  if (start < 0) throw new GpuOutputError(`rocm-smi printed no JSON (${JSON.stringify(text.trim().slice(0, 160))})`);
  let raw: unknown;
  try {
    raw = JSON.parse(text.slice(start));
  } catch (err) {
    throw new GpuOutputError(`rocm-smi printed JSON that does not parse: ${(err as Error).message}`);
  }
  const parsed = RocmJson.safeParse(raw);
  if (!parsed.success) throw new GpuOutputError("rocm-smi's JSON is not an object of cards, each an object of strings");
  const gpus: GpuReading[] = [];
  for (const [key, card] of Object.entries(parsed.data)) {
    const m = /^card(\d+)$/.exec(key);
    if (!m) continue;
    const total = bytes(card["VRAM Total Memory (B)"]);
    const used = bytes(card["VRAM Total Used Memory (B)"]);
    if (total === undefined || used === undefined || total <= 0 || used > total)
      throw new GpuOutputError(`rocm-smi's ${key} has no readable "VRAM Total Memory (B)" and "VRAM Total Used Memory (B)"`);
    const name = String(card["Card Series"] ?? card["Card series"] ?? card["Device Name"] ?? "AMD GPU").trim() || "AMD GPU";
    const id = String(card["Unique ID"] ?? "").trim();
    gpus.push({
      index: Number(m[1]),
      uuid: id === "N/A" ? "" : id.slice(0, 128),
      name: name.slice(0, 256),
      vendor: "amd",
      totalBytes: total,
      usedBytes: used,
    });
  }
  return gpus.sort((a, b) => a.index - b.index);
}
