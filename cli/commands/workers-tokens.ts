import type { Command } from "commander";
import { engineName, gpuSummary } from "../../contract/index.js";
import { ListWorkersResponseSchema, WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import {
  CreateTokenResponseSchema,
  ListTokensResponseSchema,
  TokenRole,
  TokenSchema,
  TokenService,
} from "../../gen/studio/v1/token_service_pb.js";
import { studioClient } from "../connection.js";
import { CliError, EXIT } from "../exit-codes.js";
import { enumName, formatTime, printJson, renderTable } from "../output.js";
import type { Runner } from "./runner.js";

const ROLES: Record<string, TokenRole> = { admin: TokenRole.ADMIN, client: TokenRole.CLIENT, worker: TokenRole.WORKER };
const roleName = (r: TokenRole) => enumName(TokenRole, r);

/** `studio workers list`. */
export function registerWorkers(program: Command, run: Runner) {
  program
    .command("workers")
    .description("connected workers")
    .command("list")
    .description("list connected workers: slots, engines, GPUs, current jobs, last heartbeat")
    .action(
      run(async (g, o) => {
        const res = await studioClient(WorkerService, g).listWorkers({});
        if (g.json) return printJson(o, ListWorkersResponseSchema, res);
        const rows = res.workers.map((w) => [
          w.name,
          w.version || "-",
          w.engines.map((e) => engineName(e) ?? String(e)).join(",") || "-",
          `${w.slotsInUse}/${w.slots}`,
          w.gpus.map(gpuSummary).join("; ") || "CPU only",
          w.jobIds.join(",") || "-",
          String(w.cachedSha256.length),
          formatTime(w.lastHeartbeatTime),
          w.draining ? "draining" : "",
        ]);
        o.out(renderTable(["NAME", "VERSION", "ENGINES", "SLOTS", "GPUS", "JOBS", "CACHED", "HEARTBEAT", ""], rows, { tty: o.isTTY }));
      }),
    );
}

/** `studio tokens create|list|revoke` (admin). */
export function registerTokens(program: Command, run: Runner) {
  const tokens = program.command("tokens").description("bearer tokens (admin)");

  tokens
    .command("create <name>")
    .description("create a token; its secret is printed once and cannot be shown again")
    .requiredOption("--role <role>", "admin, client or worker")
    .action(
      run(async (g, o, opts: { role: string }, name: string) => {
        const role = ROLES[opts.role.toLowerCase()];
        if (role === undefined) throw new CliError(`--role: ${JSON.stringify(opts.role)} is not admin, client or worker`, EXIT.usage);
        const res = await studioClient(TokenService, g).createToken({ name, role });
        if (g.json) return printJson(o, CreateTokenResponseSchema, res);
        o.out(`${res.secret}\n`);
        o.err(`created ${roleName(role)} token ${res.token!.id} (${name}); the secret above is shown only this once\n`);
      }),
    );

  tokens
    .command("list")
    .description("list tokens (never their secrets)")
    .action(
      run(async (g, o) => {
        const res = await studioClient(TokenService, g).listTokens({});
        if (g.json) return printJson(o, ListTokensResponseSchema, res);
        const rows = res.tokens.map((t) => [
          t.id,
          t.name,
          roleName(t.role).replace(/^token-role-/, ""),
          formatTime(t.createTime),
          formatTime(t.lastUsedTime),
          t.revokeTime ? `revoked ${formatTime(t.revokeTime)}` : "active",
        ]);
        o.out(renderTable(["ID", "NAME", "ROLE", "CREATED", "LAST USED", "STATE"], rows, { tty: o.isTTY }));
      }),
    );

  tokens
    .command("revoke <id>")
    .description("revoke a token at once (open worker sessions using it end)")
    .action(
      run(async (g, o, _opts, id: string) => {
        const res = await studioClient(TokenService, g).revokeToken({ id });
        if (g.json) return printJson(o, TokenSchema, res.token!);
        o.out(`revoked ${res.token!.id} (${res.token!.name})\n`);
      }),
    );
}
