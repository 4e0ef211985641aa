import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { httpUrlProblem } from "../contract/http-url.js";
import { CliError, EXIT } from "./exit-codes.js";

/** The global flags every verb shares. */
export interface GlobalOptions {
  server: string;
  token?: string;
  caFile?: string;
  json?: boolean;
}

/** The default studio address: the embedded default of `bun run server`. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** Checks --server and reads --ca-file; bad values are usage errors. */
export function parseConnection(opts: GlobalOptions): { baseUrl: string; ca?: string } {
  const problem = httpUrlProblem(opts.server);
  if (problem) throw new CliError(`--server: ${problem} (got ${JSON.stringify(opts.server)}); use for example ${DEFAULT_SERVER}`, EXIT.usage);
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
