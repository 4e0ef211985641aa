import { describe, expect, test } from "bun:test";
import { Command } from "commander";
import { z } from "zod";
import { addSettingFlags, ConfigError, readSettings, resolveSettings, settingsSchema, type Settings } from "../../contract/settings.js";
import { parseServerArgs } from "../../server/config.js";
import { parseWorkerArgs } from "../../worker/ui/cli-options.js";

const SETTINGS = {
  port: { arg: "<port>", env: "T_PORT", help: "port to listen on", rule: z.coerce.number().int().min(1).default(80) },
  apiKey: { arg: "<key>", env: "T_API_KEY", help: "a key", secret: true, rule: z.string().min(16).optional() },
  peer: { arg: "<url>", env: "T_PEER", help: "peers", repeatable: true, rule: z.string().transform((s) => s.split(",")).optional() },
  name: { arg: "<name>", env: "T_NAME", help: "required", rule: z.string() },
} satisfies Settings;

const program = () => new Command("t");
const read = (args: string[], env: Record<string, string> = {}, into = program()) =>
  readSettings(into, SETTINGS, settingsSchema(SETTINGS), { argv: ["bun", "t", ...args], env });

/** The ConfigError message `parse` throws. */
function problem(parse: () => unknown): string {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("no error");
}

describe("readSettings", () => {
  test("a flag beats its variable, which beats the default", () => {
    expect(read(["--name", "a", "--port", "1"], { T_PORT: "2" }).port).toBe(1);
    expect(read(["--name", "a"], { T_PORT: "2" }).port).toBe(2);
    expect(read(["--name", "a"]).port).toBe(80);
    expect(read([], { T_NAME: "from-env" }).name).toBe("from-env");
  });

  test("an empty value is unset: the default, or 'required' when there is none", () => {
    expect(read(["--name", "a"], { T_PORT: "" }).port).toBe(80);
    // An empty flag is unset too (`--port "$UNSET"` in a script), and it still wins over the variable.
    expect(read(["--name", "a", "--port", ""], { T_PORT: "2" }).port).toBe(80);
    expect(problem(() => read([], { T_NAME: "" }))).toBe("--name is required (or set T_NAME)");
  });

  test("a repeated flag adds up to a comma list, as its variable takes it; the flag still beats the variable", () => {
    expect(read(["--name", "a", "--peer", "x", "--peer", "y,z"]).peer).toEqual(["x", "y", "z"]);
    expect(read(["--name", "a"], { T_PEER: "x,y" }).peer).toEqual(["x", "y"]);
    expect(read(["--name", "a", "--peer", "x"], { T_PEER: "v,w" }).peer).toEqual(["x"]);
  });

  test("a bad value names the flag and the variable and is quoted as given; a secret's never is; all problems at once", () => {
    expect(problem(() => read(["--name", "a", "--port", "eighty"]))).toBe('--port (T_PORT): must be a number (got "eighty")');
    for (const message of [problem(() => read(["--name", "a", "--api-key", "hunter2"])), problem(() => read(["--name", "a"], { T_API_KEY: "hunter2" }))]) {
      expect(message).toStartWith("--api-key (T_API_KEY): ");
      expect(message).not.toContain("hunter2");
    }
    expect(problem(() => read(["--port", "0"], { T_API_KEY: "x" })).split("; ")).toHaveLength(3);
  });

  test("--help shows each flag's variable as [env NAME]", () => {
    const into = program();
    read(["--name", "a"], {}, into);
    const help = into.helpInformation().replace(/\s+/g, " ");
    expect(help).toContain("--port <port> port to listen on [env T_PORT]");
    expect(help).toContain("--api-key <key> a key [env T_API_KEY]");
  });
});

describe("addSettingFlags and resolveSettings, for a program that parses argv itself (the CLI's verbs)", () => {
  test("the flags a subcommand's parse left, resolved against the env given; other options are no setting", async () => {
    let resolved: unknown;
    const into = addSettingFlags(program(), SETTINGS);
    into.option("--json").command("go").action((_opts, cmd: Command) => {
      resolved = resolveSettings(cmd.optsWithGlobals(), SETTINGS, settingsSchema(SETTINGS), { T_NAME: "from-env", T_PORT: "" });
    });
    await into.parseAsync(["bun", "t", "--json", "--peer", "x", "go"]);
    expect(resolved).toEqual({ port: 80, peer: ["x"], name: "from-env" });
    expect(problem(() => resolveSettings({}, SETTINGS, settingsSchema(SETTINGS), {}))).toBe("--name is required (or set T_NAME)");
  });
});

describe("both programs read settings the one way", () => {
  test("an empty variable is unset for the studio server as for the worker", () => {
    const server = parseServerArgs(["bun", "server"], { env: { STUDIO_HOST: "", STUDIO_ADMIN_TOKEN: "", STUDIO_LEASE_TTL_MS: "" } });
    expect([server.host, server.leaseTtlMs, server.adminToken]).toEqual(["127.0.0.1", 30_000, undefined]);
    const worker = parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080"], { env: { STUDIO_SLOTS: "", STUDIO_TOKEN: "", HF_TOKEN: "" } });
    expect([worker.slots, worker.token, worker.hfToken]).toEqual([undefined, undefined, undefined]);
  });

  test("the studio reads the environment passed in, and its flags beat it", () => {
    const env = { STUDIO_PORT: "9000", STUDIO_LOG_LEVEL: "debug" };
    expect(parseServerArgs(["bun", "server"], { env })).toMatchObject({ port: 9000, logLevel: "debug" });
    expect(parseServerArgs(["bun", "server", "--port", "9001"], { env }).port).toBe(9001);
  });

  test("neither program echoes a secret: the studio's admin token, the worker's token", () => {
    const server = problem(() => parseServerArgs(["bun", "server"], { env: { STUDIO_ADMIN_TOKEN: "s3cret-short" } }));
    expect(server).toStartWith("--admin-token (STUDIO_ADMIN_TOKEN): ");
    expect(server).not.toContain("s3cret");
    const worker = problem(() => parseWorkerArgs(["bun", "worker", "--server", "http://s", "--token", "s3cret-".repeat(700)], { env: {} }));
    expect(worker).toStartWith("--token (STUDIO_TOKEN): ");
    expect(worker).not.toContain("s3cret");
  });
});
