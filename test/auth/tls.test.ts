import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient } from "@connectrpc/connect";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { startAuthStudio, transportFor, type Protocol } from "./support.js";
import { makeTestCert } from "../helpers/test-cert.js";

const CLI = join(import.meta.dir, "../../cli/main.ts");
const ADMIN = `tls-admin-${"t".repeat(32)}`;
let dir: string;
let ca: string;
let studio: Awaited<ReturnType<typeof startAuthStudio>>;


beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "studio-tls-"));
  await makeTestCert(dir);
  ca = readFileSync(join(dir, "cert.pem"), "utf8");
  studio = await startAuthStudio({ adminToken: ADMIN, tlsCert: join(dir, "cert.pem"), tlsKey: join(dir, "key.pem") });
});
afterAll(async () => {
  await studio.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("TLS end to end", () => {
  test("the studio announces an https URL", () => {
    expect(studio.url.startsWith("https://127.0.0.1:")).toBe(true);
  });

  const cases: Array<[Protocol, "1.1" | "2"]> = [
    ["connect", "1.1"],
    ["connect", "2"],
    ["grpc-web", "1.1"],
    ["grpc", "2"],
  ];
  for (const [protocol, httpVersion] of cases) {
    test(`${protocol} over HTTP/${httpVersion} with the CA trusted`, async () => {
      const client = createClient(RegistryService, transportFor(studio.url, ADMIN, { protocol, httpVersion, ca }));
      const res = await client.listModels({});
      expect(res.models.map((m) => m.name)).toContain("synthetic");
    });
  }

  test("a client that does not trust the CA is refused the connection", async () => {
    const client = createClient(RegistryService, transportFor(studio.url, ADMIN, { httpVersion: "1.1" }));
    await expect(client.listModels({})).rejects.toThrow();
  });

  test("plain HTTP/1.1 routes are served over TLS too", async () => {
    const res = await fetch(`${studio.url}/healthz`, { tls: { ca } } as RequestInit);
    expect(res.status).toBe(200);
  });

  test("the CLI with --ca-file talks to the studio over https; without it, it fails with exit 5", async () => {
    const admin = createClient(TokenService, transportFor(studio.url, ADMIN, { ca }));
    const { secret } = await admin.createToken({ name: "tls cli", role: TokenRole.CLIENT });
    const run = async (args: string[]) => {
      const p = Bun.spawn(["bun", CLI, "--server", studio.url, "--token", secret, ...args], { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "" } });
      const [stdout, stderr, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { stdout, stderr, exit };
    };
    const ok = await run(["--ca-file", join(dir, "cert.pem"), "--json", "models", "list"]);
    expect(ok.stderr).toBe("");
    expect(ok.exit).toBe(0);
    expect(JSON.parse(ok.stdout).models.map((m: { name: string }) => m.name)).toContain("synthetic");
    const untrusted = await run(["models", "list"]);
    expect(untrusted.exit).toBe(5);
    expect(untrusted.stderr).toContain("--ca-file");
  });
});
