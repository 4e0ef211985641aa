import { cpus, totalmem } from "node:os";
import { readFileSync } from "node:fs";

/** The machine a benchmark ran on, as the README states it. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  bun: string;
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"));
    return m?.[1] ?? process.platform;
  } catch {
    return process.platform;
  }
}

/** Reads the CPU model, core count, memory, OS and Bun version of this machine. */
export function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: osName(),
    bun: Bun.version,
  };
}

/** The 1-minute load average: other work on the machine distorts the figures, so it is printed with them. */
export function loadAverage(): number {
  return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
}

/** One line: "Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, Debian GNU/Linux 12 (bookworm), Bun 1.4.5". */
export function machineLine(m = describeMachine()): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Bun ${m.bun}`;
}
