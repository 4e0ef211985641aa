import pino, { type Logger } from "pino";

export type { Logger };

const REDACT = {
  paths: ["token", "hfToken", "authorization", "*.token", "*.hfToken", "*.authorization", "headers.authorization"],
  censor: "[redacted]",
};

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO ", 40: "WARN ", 50: "ERROR", 60: "FATAL" };

/**
 * The worker's logger. Off a terminal: one JSON object per line on stdout, written synchronously
 * so that nothing is lost when the process exits. On a terminal: short readable lines handed to
 * `write` (the progress bars print them above themselves). No pino transport (worker thread),
 * because a compiled single-file binary cannot load one.
 */
export function createWorkerLogger(level: string, write?: (line: string) => void): Logger {
  const base = { level, base: { service: "studio-worker" }, redact: REDACT };
  if (!write) return pino(base, pino.destination({ fd: 1, sync: true }));
  return pino(base, { write: (json: string) => write(humanLine(json)) });
}

/** Renders one pino JSON line as `12:00:01 INFO  message key=value ...`. */
export function humanLine(json: string): string {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(json);
  } catch {
    return json;
  }
  const { time, level, msg, service: _s, pid: _p, hostname: _h, ...rest } = obj;
  const clock = new Date(typeof time === "number" ? time : Date.now()).toISOString().slice(11, 19);
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${clock} ${LEVEL_NAMES[level as number] ?? String(level)} ${String(msg ?? "")}${fields ? ` ${fields}` : ""}\n`;
}
