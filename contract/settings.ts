import { Option, type Command } from "commander";
import { z } from "zod";
import { describeValue } from "./issues.js";

/**
 * One setting of a program (the studio server, the worker, the CLI), declared once: the one way all read
 * configuration. Its flag is its key in kebab case (leaseTtlMs is --lease-ttl-ms); its variable
 * feeds it when the flag is not given; its rule (type, bounds, default) validates either.
 */
export interface Setting<Rule extends z.ZodType = z.ZodType> {
  /** The flag's argument as --help shows it: "<ms>", "<dir>". */
  arg: string;
  env: string;
  help: string;
  rule: Rule;
  /** Never quoted in an error message (tokens, database URLs). */
  secret?: boolean;
  /** The flag given more than once adds up to a comma list, as its variable takes it. */
  repeatable?: boolean;
}

/** A program's settings by key, in the order --help lists them. */
export type Settings = Record<string, Setting>;

/** The settings' rules as one object schema, which a program may give rules across settings. */
export function settingsSchema<T extends Settings>(settings: T) {
  const shape = Object.fromEntries(Object.entries(settings).map(([key, s]) => [key, s.rule]));
  return z.strictObject(shape as { [K in keyof T]: T[K]["rule"] });
}

/** Configuration that cannot run: the message names each setting (flag and variable) and what is wrong. */
export class ConfigError extends Error {
  readonly code = "bad_config";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** What a setting's parser returns for text it refuses: the rule broken, which the message prefixes with the setting. */
export class Refusal {
  constructor(readonly message: string) {}
}

/** A setting read from its text by `parse`, which returns the value or a Refusal. */
export function textSetting<T>(parse: (text: string) => T | Refusal) {
  return z.string().transform((text, ctx) => {
    const value = parse(text);
    if (!(value instanceof Refusal)) return value;
    ctx.addIssue({ code: "custom", message: value.message });
    return z.NEVER;
  });
}

/** A whole-number setting from min to max; its text is coerced, so "abc" is "must be a number (got "abc")". */
export const integerSetting = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Both programs log through pino at one of its levels. */
export const logLevelSetting = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");

/** A setting's command-line flag: leaseTtlMs is --lease-ttl-ms. */
function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * Adds a flag per setting to `program`, its help ending with the variable as [env NAME]. No default
 * and no commander .env(): an unset flag stays undefined in program.opts(), so resolveSettings can
 * tell "not given" from a value and fall back to the variable, then to the rule's default.
 */
export function addSettingFlags(program: Command, settings: Settings): Command {
  for (const [key, s] of Object.entries(settings)) {
    const option = new Option(`${flagOf(key)} ${s.arg}`, `${s.help} [env ${s.env}]`);
    if (s.repeatable) option.argParser((value: string, previous: string | undefined) => (previous ? `${previous},${value}` : value));
    program.addOption(option);
  }
  return program;
}

/**
 * Resolves settings from the flags given (program.opts() once commander has parsed; keys without a
 * setting, like the CLI's --json, are ignored) and `env`: each flag, else its variable, validated with
 * `schema`, else throws ConfigError. For programs that parse argv themselves (the CLI's subcommands).
 */
export function resolveSettings<S extends z.ZodType>(
  flags: Record<string, unknown>,
  settings: Settings,
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.output<S> {
  const given = givenSettings(flags, settings, env);
  const parsed = schema.safeParse(given);
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error, given, settings));
  return parsed.data;
}

/**
 * Reads and validates a program's settings: adds their flags to `program`, parses argv (commander exits
 * for --help, --version and unknown flags) and resolves them (see resolveSettings), else throws ConfigError.
 */
export function readSettings<S extends z.ZodType>(
  program: Command,
  settings: Settings,
  schema: S,
  { argv, env = process.env }: { argv: string[]; env?: Record<string, string | undefined> },
): z.output<S> {
  addSettingFlags(program, settings).parse(argv);
  return resolveSettings(program.opts(), settings, schema, env);
}

/**
 * The settings as given, by key: the flag, else its variable (not commander's .env(), which reads
 * process.env only). An empty value counts as unset: a unit or compose file that names a variable
 * without a value, or `--flag "$UNSET"` in a script, means "the default", not "nothing".
 */
function givenSettings(flags: Record<string, unknown>, settings: Settings, env: Record<string, string | undefined>) {
  const given: Record<string, string> = {};
  for (const [key, s] of Object.entries(settings)) {
    // A setting's flag takes text (arg "<...>"), so commander gives a string or nothing.
    const value = (flags[key] as string | undefined) ?? env[s.env];
    if (value !== undefined && value !== "") given[key] = value;
  }
  return given;
}

/**
 * One line per broken rule, naming the flag and the variable, and quoting the value as given ("abc",
 * not the NaN coercion made of it), never a secret's. A rule across settings (no single key) names
 * its flags itself; a rule that already quotes what it needs ("(got ...)") is not quoted twice.
 */
function describeIssues(error: z.ZodError, given: Record<string, string>, settings: Settings): string {
  return error.issues
    .map((issue) => {
      const key = String(issue.path[0] ?? "");
      const setting = settings[key];
      if (!setting) return issue.message;
      const raw = given[key];
      // Unset yet refused: a default or optional() would have passed, so the setting is required.
      if (raw === undefined) return `${flagOf(key)} is required (or set ${setting.env})`;
      let rule = issue.message;
      if (issue.code === "invalid_type" && issue.expected === "number") rule = "must be a number";
      if (issue.code === "invalid_value") rule = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
      const quote = !setting.secret && !rule.includes("(got ");
      return `${flagOf(key)} (${setting.env}): ${rule}${quote ? ` (got ${describeValue(raw)})` : ""}`;
    })
    .join("; ");
}
