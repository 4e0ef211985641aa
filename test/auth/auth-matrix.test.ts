import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb, type StudioDb } from "../../server/db/open.js";
import { AuthEvents } from "../../server/auth/auth-events.js";
import { AuthGate } from "../../server/auth/auth-gate.js";
import { RPC_ROLES } from "../../server/auth/access-policy.js";
import { StreamLimiter } from "../../server/auth/stream-limiter.js";
import { SqliteTokenStore } from "../../server/auth/sqlite-token-store.js";
import type { Role } from "../../server/auth/caller.js";
import { callAny, contractServices, probeTransport } from "./probe.js";

/**
 * The policy as the issue states it, written independently of RPC_ROLES: admin
 * everything; client runs jobs, reads the registry and the worker list (listed or
 * watched); worker uses WorkerService except those two; every role may ask WhoAmI.
 * New RPCs fall under these rules by service.
 */
function allowed(role: Role, service: string, method: string): boolean {
  if (role === "admin") return true;
  if (service === "studio.v1.TokenService" && method === "WhoAmI") return true;
  const readsWorkers = service === "studio.v1.WorkerService" && (method === "ListWorkers" || method === "WatchWorkers");
  if (role === "client") {
    return (
      service === "studio.v1.JobService" ||
      (service === "studio.v1.RegistryService" && (method === "ListModels" || method === "GetModel")) ||
      readsWorkers
    );
  }
  return service === "studio.v1.WorkerService" && !readsWorkers;
}

let dir: string;
let db: StudioDb;
let services: DescService[];
const secrets: Record<Role | "revoked", string> = { admin: "", client: "", worker: "", revoked: "" };
let transport: ReturnType<typeof probeTransport>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "studio-matrix-"));
  db = openStudioDb(dir);
  const store = new SqliteTokenStore(db, Date.now);
  for (const role of ["admin", "client", "worker"] as const) secrets[role] = (await store.create(`${role} one`, role)).secret;
  const revoked = await store.create("gone", "client");
  await store.revoke(revoked.token.id);
  secrets.revoked = revoked.secret;
  services = (await contractServices()).filter((s) => s.typeName.startsWith("studio.v1."));
  const gate = new AuthGate(store, { loopback: true });
  await gate.init();
  transport = probeTransport(services, { gate, events: new AuthEvents(), limiter: new StreamLimiter(4) });
});

afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("auth matrix", () => {
  test("the contract has the four services and every RPC has an explicit row in RPC_ROLES", () => {
    expect(services.map((s) => s.name).sort()).toEqual(["JobService", "RegistryService", "TokenService", "WorkerService"]);
    for (const s of services) {
      for (const m of s.methods) expect(RPC_ROLES[s.typeName]?.[m.name], `${s.typeName}/${m.name}`).toBeDefined();
    }
  });

  test("each role against each RPC: allowed or PERMISSION_DENIED", async () => {
    const mismatches: string[] = [];
    let cases = 0;
    for (const s of services) {
      for (const m of s.methods) {
        for (const role of ["admin", "client", "worker"] as const) {
          cases++;
          const got = await callAny(transport, m, secrets[role]);
          const want = allowed(role, s.typeName, m.name) ? "ok" : String(Code.PermissionDenied);
          if (got !== want) mismatches.push(`${role} ${s.name}/${m.name}: got ${got}, want ${want}`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(cases).toBeGreaterThanOrEqual(3 * 25);
  });

  test("missing, malformed, unknown and revoked tokens are UNAUTHENTICATED on every RPC", async () => {
    const bad: Array<[string, string | undefined]> = [
      ["missing", undefined],
      ["unknown", `stu_${"A".repeat(43)}`],
      ["revoked", secrets.revoked],
    ];
    for (const s of services) {
      for (const m of s.methods) {
        for (const [label, token] of bad) {
          expect(`${label} ${m.name}: ${await callAny(transport, m, token)}`).toBe(`${label} ${m.name}: ${Code.Unauthenticated}`);
        }
      }
    }
  });

  test("a header that is not Bearer is UNAUTHENTICATED", async () => {
    const m = services.find((s) => s.name === "JobService")!.methods[0]!;
    for (const header of [`Basic ${btoa("a:b")}`, "Bearer", secrets.client]) {
      const code = await transport
        .unary(m as never, undefined, undefined, { authorization: header }, {})
        .then(() => "ok", (e) => String(e.code));
      expect(code).toBe(String(Code.Unauthenticated));
    }
  });
});
