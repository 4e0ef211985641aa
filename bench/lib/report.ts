/** The line prefix under which a benchmark prints its figures as JSON, for run-all and the smoke tests. */
export const RESULT_PREFIX = "BENCH_RESULT ";

/** One figure in a README row: what was measured, its value and unit, and the goal if there is one. */
export interface Figure {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** e.g. ">= 1000" or "< 10"; met is undefined when there is no goal. */
  goal?: string;
  met?: boolean;
  note?: string;
}

/**
 * Records figures under one benchmark label: `add(metric, value, unit, { note, ...goal(...) })`
 * pushes { bench, metric, value, unit, note, goal, met } onto `figures`.
 */
export function figureRecorder(figures: Figure[], bench: string) {
  return (metric: string, value: number, unit: string, extra: Pick<Figure, "note" | "goal" | "met"> = {}): void => {
    figures.push({ bench, metric, value, unit, ...extra });
  };
}

/** A goal of the form "at least", "at most" or "below" a bound. */
export function goal(kind: ">=" | "<" | "<=", bound: number, value: number): { goal: string; met: boolean } {
  const met = kind === ">=" ? value >= bound : kind === "<=" ? value <= bound : value < bound;
  return { goal: `${kind} ${bound}`, met };
}

/** Formats a number for a table: integers with thousands separators, small values with 2 decimals. */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A Markdown table (as the README holds it); a "|" inside a cell is escaped so that it stays in its cell. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/(?<!\\)\|/g, "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The README's Performance table rows for a list of figures. */
export function figuresTable(figures: Figure[]): string {
  return markdownTable(
    ["benchmark", "measure", "result", "goal", "met"],
    figures.map((f) => [
      f.bench,
      f.note ? `${f.metric} (${f.note})` : f.metric,
      `${fmt(f.value)} ${f.unit}`.trim(),
      f.goal ? `${f.goal} ${f.unit}`.trim() : "",
      f.met === undefined ? "" : f.met ? "yes" : "**no**",
    ]),
  );
}

/** Prints the figures as a table for people and as one JSON line for programs. */
export function emitFigures(bench: string, figures: Figure[], extra: Record<string, unknown> = {}): void {
  console.log(`\n${figuresTable(figures)}\n`);
  console.log(RESULT_PREFIX + JSON.stringify({ bench, figures, ...extra }));
}

/** Reads the figures a benchmark printed, from its whole stdout. */
export function parseFigures(stdout: string): { bench: string; figures: Figure[] }[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith(RESULT_PREFIX))
    .map((l) => JSON.parse(l.slice(RESULT_PREFIX.length)) as { bench: string; figures: Figure[] });
}
