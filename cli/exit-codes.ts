import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The exit codes scripts can rely on (also printed by `studio --help`):
 * 0 done; 1 the server refused or failed the request (the Connect code name is
 * printed); 2 usage error (bad flags, unreadable or invalid input file); 3 not
 * found; 4 unauthenticated or permission denied; 5 the studio could not be reached.
 */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  denied: 4,
  unreachable: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  done
  1  the studio refused or failed the request (the error names the Connect code)
  2  usage error: bad flags or arguments, an unreadable or invalid input file
  3  not found (model, job, output or token)
  4  unauthenticated or permission denied: check --token / STUDIO_TOKEN and its role
  5  the studio could not be reached: check --server / STUDIO_SERVER and --ca-file`;

/** An error the CLI itself raises (bad input), with the exit code it ends with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.usage,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** "not_found" for Code.NotFound: the name Connect uses on the wire. */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}

/** Node's codes for a TLS certificate the client does not trust (or that names another host). */
const TLS_TRUST_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The system error code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT...) somewhere in an error's cause chain. */
function systemCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** The exit code and a message that says what to do, for any error an RPC raised. */
export function describeRpcError(err: unknown, server: string): { exitCode: ExitCode; message: string } {
  const e = ConnectError.from(err);
  const name = codeName(e.code);
  const sys = systemCode(e.cause);
  if (sys && TLS_TRUST_CODES.has(sys)) {
    return {
      exitCode: EXIT.unreachable,
      message: `the studio at ${server} presented a certificate this machine does not trust (${sys})\n  pass its CA with --ca-file (or STUDIO_CA_FILE)`,
    };
  }
  const base = `${name}: ${e.rawMessage}`;
  switch (e.code) {
    case Code.NotFound:
      return { exitCode: EXIT.notFound, message: `${base}\n  check the name or id (\`studio models list\`, \`studio jobs list\`)` };
    case Code.Unauthenticated:
      return {
        exitCode: EXIT.denied,
        message: `${base}\n  pass a token with --token or STUDIO_TOKEN; an admin creates one with \`studio tokens create <name> --role client\``,
      };
    case Code.PermissionDenied:
      return { exitCode: EXIT.denied, message: `${base}\n  this token's role may not do that; ask an admin for a token with the right role` };
    case Code.Unavailable:
      return {
        exitCode: EXIT.unreachable,
        message: `cannot reach the studio at ${server} (${name}: ${e.rawMessage})\n  is it running? check --server / STUDIO_SERVER, and --ca-file for a private CA`,
      };
    default:
      return { exitCode: EXIT.failed, message: base };
  }
}
