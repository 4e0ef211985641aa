import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { httpUrlProblem, withoutCredentials } from "../contract/http-url.js";
import { ConfigError, Refusal, resolveSettings, settingsSchema, textSetting, type Settings } from "../contract/settings.js";
import { CliError, EXIT } from "./exit-codes.js";

/** The default studio address: the embedded default of `bun run server`. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** --server: the one URL rule (contract/http-url.ts), with an example of a good one for the operator to copy. */
const studioUrl = textSetting((url) => {
  const problem = httpUrlProblem(url);
  return problem ? new Refusal(`${problem} (got ${JSON.stringify(withoutCredentials(url))}); use for example ${DEFAULT_SERVER}`) : url;
});

/**
 * The global flags that say which studio to talk to and how, declared once (contract/settings.ts):
 * flag beats variable beats default, and a variable set to "" is unset. --json is a plain flag: no variable.
 */
export const CONNECTION_SETTINGS = {
  server: { arg: "<url>", env: "STUDIO_SERVER", rule: studioUrl.default(DEFAULT_SERVER), help: `the studio's URL (http:// or https://) (default: ${DEFAULT_SERVER})` },
  token: { arg: "<token>", env: "STUDIO_TOKEN", secret: true, rule: z.string().optional(), help: "bearer token (admin, client or worker)" },
  caFile: { arg: "<file>", env: "STUDIO_CA_FILE", rule: z.string().optional(), help: "PEM CA certificate to trust for an https:// studio" },
} satisfies Settings;
const connectionSchema = settingsSchema(CONNECTION_SETTINGS);

/** The global flags every verb shares, resolved. */
export interface GlobalOptions {
  server: string;
  token?: string;
  caFile?: string;
  json?: boolean;
}

/**
 * The globals from the flags commander parsed (a verb's optsWithGlobals()) and `env`. The CLI resolves
 * them itself rather than through readSettings, which parses argv: commander must first pick the verb
 * (parseAsync). A bad setting is a usage error, like a bad flag.
 */
export function resolveGlobalOptions(flags: Record<string, unknown>, env: Record<string, string | undefined> = process.env): GlobalOptions {
  try {
    return { ...resolveSettings(flags, CONNECTION_SETTINGS, connectionSchema, env), json: flags.json === true };
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

/** Reads --ca-file for the (already valid) --server; an unreadable file, or one for plain http, is a usage error. */
export function parseConnection(opts: GlobalOptions): { baseUrl: string; ca?: string } {
  const url = new URL(opts.server);
  let ca: string | undefined;
  if (opts.caFile) {
    try {
      ca = readFileSync(opts.caFile, "utf8");
    } catch (err) {
      throw new CliError(`--ca-file: cannot read ${opts.caFile}: ${(err as Error).message}`, EXIT.usage);
    }
    if (url.protocol !== "https:") throw new CliError("--ca-file only makes sense with an https:// --server", EXIT.usage);
  }
  return { baseUrl: url.toString().replace(/\/$/, ""), ca };
}

/**
 * A Connect transport (HTTP/1.1, which every proxy passes) to the studio,
 * sending the token as `Authorization: Bearer` and trusting --ca-file if given.
 */
export function createStudioTransport(opts: GlobalOptions): Transport {
  const { baseUrl, ca } = parseConnection(opts);
  const token = opts.token?.trim();
  const interceptors: Interceptor[] = token
    ? [
        (next) => async (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ]
    : [];
  return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors, nodeOptions: ca ? { ca } : undefined });
}

/** A client of one studio service. */
export function studioClient<S extends DescService>(service: S, opts: GlobalOptions): Client<S> {
  return createClient(service, createStudioTransport(opts));
}
