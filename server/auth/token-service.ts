import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  CreateTokenResponseSchema,
  ListTokensResponseSchema,
  RevokeTokenResponseSchema,
  TokenRole,
  TokenSchema,
  TokenService,
  WhoAmIResponseSchema,
  type Token,
} from "../../gen/studio/v1/token_service_pb.js";
import type { Logger } from "../log.js";
import type { AuthEvents } from "./auth-events.js";
import { callerOf, OPEN_CALLER, type Role } from "./caller.js";
import { checkTokenName, type TokenRecord, type TokenStore } from "./token-store.js";

const ROLE_TO_PROTO: Record<Role, TokenRole> = {
  admin: TokenRole.ADMIN,
  client: TokenRole.CLIENT,
  worker: TokenRole.WORKER,
};

/** The proto enum for a role name. */
export function roleToProto(role: Role): TokenRole {
  return ROLE_TO_PROTO[role];
}

/** The role name for a proto enum value, or undefined for UNSPECIFIED and unknown values. */
export function roleFromProto(role: TokenRole): Role | undefined {
  return (Object.keys(ROLE_TO_PROTO) as Role[]).find((r) => ROLE_TO_PROTO[r] === role);
}

/** A stored token as the proto Token (never with its secret). */
export function tokenToProto(t: TokenRecord): Token {
  return create(TokenSchema, {
    id: t.id,
    name: t.name,
    role: roleToProto(t.role),
    createTime: timestampFromMs(t.createdAt),
    lastUsedTime: t.lastUsedAt === null ? undefined : timestampFromMs(t.lastUsedAt),
    revokeTime: t.revokedAt === null ? undefined : timestampFromMs(t.revokedAt),
  });
}

/**
 * While the studio is open, the first token created turns auth on for good; if it were not an
 * admin token, nobody could create tokens, edit models or revoke anything afterwards.
 */
export const FIRST_TOKEN_MUST_BE_ADMIN =
  "this studio is open (no tokens yet) and the first token turns auth on for good, so it must be an admin token: " +
  "create one first (`bun run studio tokens create <name> --role admin`), then create client and worker tokens with it " +
  "(STUDIO_TOKEN=<admin secret>)";

/**
 * Registers TokenService (admin only but WhoAmI, by RPC_ROLES); isOpen says whether the studio still runs without tokens.
 * TokenErrors reach the client through the one mapping (ops/rpc-errors.ts).
 */
export function tokenRoutes(store: TokenStore, events: AuthEvents, logger: Logger, isOpen: () => Promise<boolean>) {
  return (router: ConnectRouter) =>
    router.service(TokenService, {
      async createToken(req, ctx) {
        const role = roleFromProto(req.role);
        if (!role) throw new ConnectError("role: choose admin, client or worker", Code.InvalidArgument);
        checkTokenName(req.name);
        if (role !== "admin" && (await isOpen())) throw new ConnectError(`role: ${FIRST_TOKEN_MUST_BE_ADMIN}`, Code.FailedPrecondition);
        const { token, secret } = await store.create(req.name, role);
        events.created(token.id);
        logger.info({ tokenId: token.id, tokenName: token.name, role, by: callerOf(ctx).name }, "token created");
        return create(CreateTokenResponseSchema, { token: tokenToProto(token), secret });
      },
      async listTokens() {
        return create(ListTokensResponseSchema, { tokens: (await store.list()).map(tokenToProto) });
      },
      async revokeToken(req, ctx) {
        if (!req.id) throw new ConnectError("id: which token to revoke (see `studio tokens list`)", Code.InvalidArgument);
        const token = await store.revoke(req.id);
        logger.info({ tokenId: token.id, tokenName: token.name, by: callerOf(ctx).name }, "token revoked");
        events.revoked(token.id);
        return create(RevokeTokenResponseSchema, { token: tokenToProto(token) });
      },
      async whoAmI(_req, ctx) {
        const caller = callerOf(ctx);
        const open = caller.tokenId === OPEN_CALLER.tokenId;
        return create(WhoAmIResponseSchema, { role: roleToProto(caller.role), tokenName: caller.name, tokenId: open ? "" : caller.tokenId, open });
      },
    });
}
