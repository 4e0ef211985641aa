import { create } from "@bufbuild/protobuf";
import { Option, type Command } from "commander";
import { formatIssues, taskIssues } from "../contract/index.js";
import { ModelCliDefaultsSchema } from "../gen/studio/v1/model_pb.js";
import { TaskSchema, type Task } from "../gen/studio/v1/job_pb.js";
import { CliError, EXIT } from "./exit-codes.js";

/** The flags of `jobs create` that shape the task. */
export interface TaskFlags {
  kind?: "image" | "text";
  negativePrompt?: string;
  seed?: string;
  batchCount?: string;
  steps?: string;
  width?: string;
  height?: string;
  cfgScale?: string;
  samplingMethod?: string;
  maxTokens?: string;
  temperature?: string;
  stop?: string[];
}

/** Adds the task flags to a command. */
export function addTaskOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--kind <kind>", "image or text (default: from the model's engine)").choices(["image", "text"]))
    .option("--negative-prompt <text>", "image: what to avoid")
    .option("--seed <n>", "a fixed seed (non-negative integer)")
    .option("--batch-count <n>", "image: how many images")
    .option("--steps <n>", "image: sampling steps (overrides the model's default)")
    .option("--width <px>", "image: width")
    .option("--height <px>", "image: height")
    .option("--cfg-scale <x>", "image: CFG scale")
    .option("--sampling-method <name>", "image: sampler, for example euler")
    .option("--max-tokens <n>", "text: most tokens to generate")
    .option("--temperature <x>", "text: sampling temperature")
    .option("--stop <text...>", "text: stop strings");
}

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new CliError(`--${flag}: expected a whole number (got ${JSON.stringify(v)})`, EXIT.usage);
  return Number(v);
}

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new CliError(`--${flag}: expected a number (got ${JSON.stringify(v)})`, EXIT.usage);
  return n;
}

/** Builds and checks the task with the contract's rules; a broken rule is a usage error naming the flag's field. */
export function buildTask(kind: "image" | "text", prompt: string, f: TaskFlags): Task {
  const seed = f.seed === undefined ? undefined : BigInt(int("seed", f.seed)!);
  const task =
    kind === "image"
      ? create(TaskSchema, {
          kind: {
            case: "image",
            value: {
              prompt,
              negativePrompt: f.negativePrompt ?? "",
              seed,
              batchCount: int("batch-count", f.batchCount) ?? 0,
              overrides: create(ModelCliDefaultsSchema, {
                steps: int("steps", f.steps),
                width: int("width", f.width),
                height: int("height", f.height),
                cfgScale: num("cfg-scale", f.cfgScale),
                samplingMethod: f.samplingMethod,
              }),
            },
          },
        })
      : create(TaskSchema, {
          kind: {
            case: "text",
            value: { prompt, seed, maxTokens: int("max-tokens", f.maxTokens), temperature: num("temperature", f.temperature), stop: f.stop ?? [] },
          },
        });
  const issues = taskIssues(task);
  if (issues.length > 0) throw new CliError(`invalid task: ${formatIssues(issues)}`, EXIT.usage);
  return task;
}
