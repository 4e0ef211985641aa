import pino, { type Logger } from "pino";

export type { Logger };

/** JSON lines by default; pretty when stdout is a terminal. Secrets are redacted wherever they appear. */
export function createLogger(level: string, { pretty = process.stdout.isTTY === true } = {}): Logger {
  return pino({
    level,
    base: { service: "studio" },
    redact: {
      paths: [
        "token",
        "secret",
        "authorization",
        "adminToken",
        "*.token",
        "*.secret",
        "*.authorization",
        "*.adminToken",
        "headers.authorization",
        "*.headers.authorization",
      ],
      censor: "[redacted]",
    },
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true, ignore: "pid,hostname,service" } } } : {}),
  });
}
