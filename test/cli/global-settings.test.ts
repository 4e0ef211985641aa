import { describe, expect, test } from "bun:test";
import { CONNECTION_SETTINGS, DEFAULT_SERVER, resolveGlobalOptions } from "../../cli/connection.js";
import { CliError, EXIT } from "../../cli/exit-codes.js";
import { runCli } from "../../cli/main.js";
import type { Output } from "../../cli/output.js";

/** An Output that keeps what the CLI wrote. */
function capture() {
  const written = { out: "", err: "" };
  const output: Output = { out: (t) => void (written.out += t), err: (t) => void (written.err += t), isTTY: false };
  return { output, written };
}

/** `studio ...args` in this process, with exactly the variables in `env`. */
async function studio(args: string[], env: Record<string, string>) {
  const { output, written } = capture();
  const exit = await runCli(["bun", "studio", ...args], output, env);
  return { exit, ...written };
}

describe("the CLI's global settings, read the one way (contract/settings.ts)", () => {
  test("flag beats variable beats default; an empty variable is unset, as for the studio and the worker", () => {
    expect(resolveGlobalOptions({ server: "https://flag:1" }, { STUDIO_SERVER: "https://env:2" }).server).toBe("https://flag:1");
    expect(resolveGlobalOptions({}, { STUDIO_SERVER: "https://env:2", STUDIO_TOKEN: "t", STUDIO_CA_FILE: "ca.pem" })).toMatchObject({
      server: "https://env:2",
      token: "t",
      caFile: "ca.pem",
    });
    // STUDIO_SERVER= used to reach commander as "" and stop every verb with a bad-URL error.
    const empty = resolveGlobalOptions({}, { STUDIO_SERVER: "", STUDIO_TOKEN: "", STUDIO_CA_FILE: "" });
    expect(empty).toEqual({ server: DEFAULT_SERVER, token: undefined, caFile: undefined, json: false });
  });

  test("a bad --server is a usage error naming the flag and the variable, with an example", () => {
    let error: unknown;
    try {
      resolveGlobalOptions({}, { STUDIO_SERVER: "ftp://x" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(EXIT.usage);
    expect((error as CliError).message).toBe(`--server (STUDIO_SERVER): must use http: or https:, not ftp: (got "ftp://x"); use for example ${DEFAULT_SERVER}`);
  });

  test("a bad STUDIO_SERVER stops the verb before any request; with an empty one, the flag's studio is the one named", async () => {
    const bad = await studio(["models", "list"], { STUDIO_SERVER: "not a url" });
    expect(bad.exit).toBe(EXIT.usage);
    expect(bad.err).toStartWith("studio: --server (STUDIO_SERVER): must be an absolute http: or https: URL");
    // Nothing listens on the discard port: the error names the studio the verb resolved from the flag.
    const unreachable = await studio(["--server", "http://127.0.0.1:9", "models", "list"], { STUDIO_SERVER: "" });
    expect(unreachable.exit).toBe(EXIT.unreachable);
    expect(unreachable.err).toContain("cannot reach the studio at http://127.0.0.1:9");
  });

  test("a --token value never appears in an error, from the flag or the variable", async () => {
    const secret = "stu_s3cret-never-printed";
    const runs = await Promise.all([
      studio(["--token", secret, "--server", "ftp://x", "models", "list"], {}),
      studio(["--server", "http://127.0.0.1:9", "models", "list"], { STUDIO_TOKEN: secret }),
      // Not a valid header value: the request fails (exit 1) before it is sent, and the error does not quote it.
      studio(["--token", `${secret}\nmore`, "--server", "http://127.0.0.1:9", "models", "list"], {}),
      studio(["--token", secret, "--ca-file", "/no/such/ca.pem", "--server", "https://127.0.0.1:9", "models", "list"], {}),
    ]);
    expect(runs.map((r) => r.exit)).toEqual([EXIT.usage, EXIT.unreachable, EXIT.failed, EXIT.usage]);
    for (const run of runs) expect(run.out + run.err).not.toContain("s3cret");
    expect(CONNECTION_SETTINGS.token.secret).toBe(true);
  });

  test("--help shows each global flag's variable as [env NAME], and the default studio", async () => {
    const help = (await studio(["--help"], {})).out.replace(/\s+/g, " ");
    expect(help).toContain(`--server <url> the studio's URL (http:// or https://) (default: ${DEFAULT_SERVER}) [env STUDIO_SERVER]`);
    expect(help).toContain("--token <token> bearer token (admin, client or worker) [env STUDIO_TOKEN]");
    expect(help).toContain("--ca-file <file> PEM CA certificate to trust for an https:// studio [env STUDIO_CA_FILE]");
  });
});
