import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

/** Where the CLI writes; tests and the watch view pass their own. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
  isTTY: boolean;
}

/** stdout and stderr of this process. */
export const processOutput: Output = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: process.stdout.isTTY === true,
};

/** A message as the proto JSON the studio speaks, one document per call. */
export function printJson<D extends DescMessage>(o: Output, schema: D, message: MessageShape<D>): void {
  o.out(`${JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: false }), null, 2)}\n`);
}

/** Plain JSON (import/export files, arrays). */
export function printValue(o: Output, value: unknown): void {
  o.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Columns padded to their widest cell; a header line, underlined on a terminal. */
export function renderTable(headers: string[], rows: string[][], { tty = false }: { tty?: boolean } = {}): string {
  if (rows.length === 0) return "(none)\n";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const head = line(headers);
  return `${tty ? `\x1b[1m${head}\x1b[0m` : head}\n${rows.map(line).join("\n")}\n`;
}

/** "2026-11-26 19:43:47" (UTC) or "-" when unset. */
export function formatTime(t: Timestamp | undefined): string {
  if (!t) return "-";
  return new Date(timestampMs(t)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

/** A short lower-case name for an enum value: JobStatus.QUEUED → "queued". */
export function enumName(e: Record<number, string>, value: number): string {
  return (e[value] ?? String(value)).toLowerCase().replace(/_/g, "-");
}
