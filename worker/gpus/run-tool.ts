import { spawn } from "node:child_process";
import { WORKER_SECRETS } from "../engines/engine-env.js";

/** What a GPU tool printed and how it ended. */
export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Why a tool gave no answer: missing (cannot be started), timed out (killed), or its output was too large. */
export class ToolError extends Error {
  readonly code = "gpu_tool_failed";
  constructor(
    readonly kind: "missing" | "timeout" | "too-large",
    message: string,
  ) {
    super(message);
    this.name = "ToolError";
  }
}

/** The worker's environment without its secrets (a GPU tool has no use for them), in the C locale so that numbers read the same everywhere. */
function toolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C" };
  for (const name of WORKER_SECRETS) delete env[name];
  return env;
}

/** More output than any GPU listing makes: a tool printing more is broken, not a big machine. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Runs a GPU tool (nvidia-smi, rocm-smi) with an argv array (no shell), time-boxed: a tool that
 * hangs (a wedged driver does that) is killed with its process group after `timeoutMs`, and the
 * call rejects at once whether or not the process has gone yet.
 */
export function runTool(binary: string, args: readonly string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const child = spawn(binary, [...args], { stdio: ["ignore", "pipe", "pipe"], detached: true, env: toolEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let bytes = 0;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const kill = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    };
    const timer = setTimeout(() => {
      kill();
      finish(() => reject(new ToolError("timeout", `${binary} ${args.join(" ")} gave no answer within ${timeoutMs} ms (killed)`)));
    }, timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes > MAX_OUTPUT_BYTES) {
        kill();
        finish(() => reject(new ToolError("too-large", `${binary} printed more than ${MAX_OUTPUT_BYTES} bytes (killed)`)));
        return;
      }
      into.push(chunk);
    };
    child.stdout.on("data", collect(out));
    child.stderr.on("data", collect(err));
    child.once("error", (e) => finish(() => reject(new ToolError("missing", `cannot run ${binary}: ${e.message}`))));
    child.once("close", (code, signal) =>
      finish(() => resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") })),
    );
  });
}
