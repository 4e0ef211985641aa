import { readFileSync } from "node:fs";

/**
 * Instruction counts for exact A/B comparisons on a shared machine, where CPU time moves with
 * whatever else runs: the studio runs under `valgrind --tool=callgrind` with instrumentation off,
 * and a phase switches it on and off around itself (callgrind_control), so the dump holds only
 * the instructions that phase executed. Valgrind slows the studio down many times over: use it
 * for counts, never for throughput or latency.
 *
 * JavaScriptCore's JIT is switched off (BUN_JSC_useJIT=0) for the studio under callgrind: with it,
 * counts of the same run moved by 70% (code compiled at different moments, run by valgrind's
 * translator at great cost); interpreted, repeated runs agree within a few percent. The count then
 * weighs JavaScript more heavily than the JIT would, against native work (SQLite, HTTP/2 framing,
 * syscalls): a proxy for A/B comparisons, not a figure of production cost.
 */
export function callgrindWrapper(outFile: string): string[] {
  return [
    "env",
    "BUN_JSC_useJIT=0",
    process.env.VALGRIND ?? "valgrind",
    "--tool=callgrind",
    "--instr-atstart=no",
    // JavaScriptCore writes and then runs machine code: valgrind must notice code written anywhere.
    "--smc-check=all-non-file",
    `--callgrind-out-file=${outFile}`,
  ];
}

/** Switches callgrind's instrumentation on or off in a running process. */
export async function callgrindInstrument(pid: number, on: boolean): Promise<void> {
  const proc = Bun.spawn(["callgrind_control", "-i", on ? "on" : "off", String(pid)], { stdout: "ignore", stderr: "pipe" });
  if ((await proc.exited) !== 0) throw new Error(`callgrind_control -i ${on ? "on" : "off"} ${pid} failed: ${await new Response(proc.stderr).text()}`);
}

/** The instructions executed (Ir) that a callgrind output file counts in total. */
export function callgrindTotal(outFile: string): number {
  const text = readFileSync(outFile, "utf8");
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!m) throw new Error(`no totals in ${outFile}`);
  return Number(m[1]);
}
