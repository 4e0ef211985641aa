import { sqliteOf } from "../helpers/test-studio.js";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { hashSecret, TOKEN_PREFIX } from "../../server/auth/token-store.js";
import { clientFor, startAuthStudio, type Protocol } from "./support.js";

const ADMIN = `admin-secret-${"x".repeat(32)}`;
let studio: Awaited<ReturnType<typeof startAuthStudio>>;

beforeAll(async () => {
  studio = await startAuthStudio({ adminToken: ADMIN });
});
afterAll(() => studio.stop());

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  return p.then(
    () => "ok" as const,
    (e) => ConnectError.from(e).code,
  );
}

const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "a lighthouse" } } });

describe("auth on a real studio", () => {
  for (const protocol of ["connect", "grpc", "grpc-web"] as Protocol[]) {
    test(`${protocol}: no token is UNAUTHENTICATED, wrong role PERMISSION_DENIED, right role passes`, async () => {
      const admin = clientFor(TokenService, studio.url, ADMIN, protocol);
      const { secret } = await admin.createToken({ name: `client over ${protocol}`, role: TokenRole.CLIENT });
      expect(await code(clientFor(JobService, studio.url, undefined, protocol).listJobs({}))).toBe(Code.Unauthenticated);
      expect(await code(clientFor(TokenService, studio.url, secret, protocol).listTokens({}))).toBe(Code.PermissionDenied);
      expect(await code(clientFor(RegistryService, studio.url, secret, protocol).deleteModel({ name: "synthetic" }))).toBe(
        Code.PermissionDenied,
      );
      expect(await code(clientFor(JobService, studio.url, secret, protocol).listJobs({}))).toBe("ok");
    });
  }

  test("tokens: secret shown once with the stu_ prefix, only its hash stored, listed without secrets, revocable", async () => {
    const admin = clientFor(TokenService, studio.url, ADMIN);
    const created = await admin.createToken({ name: "render farm", role: TokenRole.WORKER });
    expect(created.secret.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(Buffer.from(created.secret.slice(TOKEN_PREFIX.length), "base64url").length).toBe(32);
    const row = sqliteOf(studio).query<{ secretHash: string }, [string]>("SELECT secretHash FROM apiTokens WHERE id = ?").get(created.token!.id)!;
    expect(row.secretHash).toBe(hashSecret(created.secret));
    const dump = JSON.stringify(sqliteOf(studio).query("SELECT * FROM apiTokens").all());
    expect(dump).not.toContain(created.secret);
    expect(dump).not.toContain(ADMIN);

    const listed = await admin.listTokens({});
    const mine = listed.tokens.find((t) => t.id === created.token!.id)!;
    expect(mine.name).toBe("render farm");
    expect(mine.role).toBe(TokenRole.WORKER);
    expect(JSON.stringify(listed, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(created.secret);

    const client = await admin.createToken({ name: "cli", role: TokenRole.CLIENT });
    expect(await code(clientFor(JobService, studio.url, client.secret).listJobs({}))).toBe("ok");
    const afterUse = (await admin.listTokens({})).tokens.find((t) => t.id === client.token!.id)!;
    expect(afterUse.lastUsedTime).toBeDefined();

    const revoked = await admin.revokeToken({ id: client.token!.id });
    expect(revoked.token?.revokeTime).toBeDefined();
    expect(await code(clientFor(JobService, studio.url, client.secret).listJobs({}))).toBe(Code.Unauthenticated);
    expect(await code(admin.revokeToken({ id: client.token!.id }))).toBe(Code.FailedPrecondition);
    expect(await code(admin.revokeToken({ id: "tok_nope" }))).toBe(Code.NotFound);
    expect(await code(admin.createToken({ name: "", role: TokenRole.CLIENT }))).toBe(Code.InvalidArgument);
    expect(await code(admin.createToken({ name: "x", role: TokenRole.UNSPECIFIED }))).toBe(Code.InvalidArgument);
  });

  test("revoking a token ends its open WatchJobs stream with UNAUTHENTICATED", async () => {
    const admin = clientFor(TokenService, studio.url, ADMIN);
    const { secret, token } = await admin.createToken({ name: "watcher", role: TokenRole.CLIENT });
    const jobs = clientFor(JobService, studio.url, secret);
    const { job } = await jobs.createJob({ model: "synthetic", task });
    const listeners = studio.ctx.events.listenerCount;
    const stream = jobs.watchJobs({ jobIds: [job!.id], includeSnapshot: true })[Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.value?.job?.id).toBe(job!.id);
    expect(studio.ctx.events.listenerCount).toBe(listeners + 1);
    await admin.revokeToken({ id: token!.id });
    expect(await code(stream.next())).toBe(Code.Unauthenticated);
    // The server side lets go of the watch too (its cleanup runs after the stream closed; no event marks it).
    for (let i = 0; i < 200 && studio.ctx.events.listenerCount > listeners; i++) await Bun.sleep(2);
    expect(studio.ctx.events.listenerCount).toBe(listeners);
  });

  test("WatchJobs streams are bounded per token: RESOURCE_EXHAUSTED past the limit, a slot frees when one closes", async () => {
    const local = await startAuthStudio({ adminToken: ADMIN, maxWatchStreamsPerToken: 2 });
    try {
      const admin = clientFor(TokenService, local.url, ADMIN);
      const a = (await admin.createToken({ name: "a", role: TokenRole.CLIENT })).secret;
      const b = (await admin.createToken({ name: "b", role: TokenRole.CLIENT })).secret;
      const { job } = await clientFor(JobService, local.url, a).createJob({ model: "synthetic", task });
      const open = (secret: string, signal?: AbortSignal) => {
        const it = clientFor(JobService, local.url, secret).watchJobs({ jobIds: [job!.id], includeSnapshot: true }, { signal })[Symbol.asyncIterator]();
        return it;
      };
      const aborts = [new AbortController(), new AbortController()];
      const held = aborts.map((c) => open(a, c.signal));
      for (const it of held) expect((await it.next()).value?.job?.id).toBe(job!.id);
      expect(await code(open(a).next())).toBe(Code.ResourceExhausted);
      expect((await open(b).next()).value?.job?.id).toBe(job!.id);
      aborts[0]!.abort();
      expect(await code(held[0]!.next())).toBe(Code.Canceled);
      // The slot is freed when the server sees the stream end; retry until it has (event-driven, bounded).
      let got: Code | "ok" = Code.ResourceExhausted;
      for (let i = 0; i < 200 && got === Code.ResourceExhausted; i++) {
        got = await code(open(a).next());
        if (got === Code.ResourceExhausted) await Bun.sleep(5);
      }
      expect(got).toBe("ok");
      aborts[1]!.abort();
    } finally {
      await local.stop(200);
    }
  });

  test("request size limits: an oversized registry request is RESOURCE_EXHAUSTED, not a crash", async () => {
    const admin = clientFor(RegistryService, studio.url, ADMIN);
    const big = "d".repeat(600 * 1024);
    expect(await code(admin.updateModel({ name: "synthetic", description: big }))).toBe(Code.ResourceExhausted);
    expect(await code(admin.getModel({ name: "synthetic" }))).toBe("ok");
  });
});
