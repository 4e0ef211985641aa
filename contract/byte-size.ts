const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;
const POWER: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/**
 * A byte count in binary units, the one way the CLI, the web page and the worker write sizes (and
 * the unit parseByteSize reads): whole bytes below 1 KiB, then as `ls -h` does, one decimal below
 * 10 ("1.5 KiB") and none above ("512 MiB"). `missing` stands in for an unknown size.
 */
export function formatBytes(n: bigint | number | undefined, missing = "-"): string {
  if (n === undefined) return missing;
  let v = Number(n);
  let unit = 0;
  while (Math.abs(v) >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(v)} B`;
  const decimals = Math.abs(Number(v.toFixed(1))) < 10 ? 1 : 0;
  let text = v.toFixed(decimals);
  // 1023.7 KiB rounds to "1024": that is 1.0 MiB.
  if (Math.abs(Number(text)) >= 1024 && unit < UNITS.length - 1) {
    text = (v / 1024).toFixed(1);
    unit += 1;
  }
  return `${text} ${UNITS[unit]}`;
}

/** Parses "500M", "20GiB", "1.5G" or a plain byte count, in binary units (1K = 1024); undefined when it is not one. */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const value = Math.round(Number(m[1]) * 1024 ** POWER[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(value) ? value : undefined;
}
