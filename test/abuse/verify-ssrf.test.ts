import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { addressProblem, createGuardedFetch } from "../../server/registry/guarded-fetch.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Issue 16, item 10: VerifyModel (admin only) fetched any address, the cloud metadata service's
 * link-local 169.254.169.254 included, and followed redirects into such addresses. Link-local and
 * unspecified addresses are now refused where the connection is made, at every hop; private ranges
 * and loopback stay allowed (LAN mirrors, local file servers).
 */
let t: TestStudio;
let reg: Client<typeof RegistryService>;
let server: http.Server;
let base: string;
let port: number;
const hits: string[] = [];
beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits.push(req.url ?? "");
    const to = /^\/redirect\?to=(.*)$/.exec(req.url ?? "");
    if (to) return void res.writeHead(302, { location: decodeURIComponent(to[1]!) }).end();
    res.writeHead(200, { "content-length": "4" }).end(req.method === "HEAD" ? undefined : "data");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  t = await startTestStudio({ verifyUrlTimeoutMs: 2000 });
  reg = t.client(RegistryService);
});
afterAll(async () => {
  await t.stop();
  server.close();
});

/** VerifyModel of a source with one file at `url`; that file's check. */
const verifyOne = async (url: string) => {
  const source = create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: [{ role: ModelFileRole.DIFFUSION_MODEL, filename: "f.gguf", url }],
  });
  return (await reg.verifyModel({ target: { case: "source", value: source } })).files[0]!;
};

describe("VerifyModel does not reach link-local or unspecified addresses", () => {
  test("the metadata address, directly or through a redirect, and 0.0.0.0 (this host) through a redirect, are refused", async () => {
    hits.length = 0;
    const [direct, redirected, unspecified, mapped, fine] = await Promise.all(
      [
        "http://169.254.169.254/latest/meta-data/",
        `${base}/redirect?to=${encodeURIComponent("http://169.254.169.254/latest/meta-data/")}`,
        `${base}/redirect?to=${encodeURIComponent(`http://0.0.0.0:${port}/secret`)}`,
        `${base}/redirect?to=${encodeURIComponent(`http://[::ffff:169.254.169.254]/`)}`,
        `${base}/fine.gguf`,
      ].map(verifyOne),
    );
    expect(direct).toMatchObject({ reachable: false, httpStatus: 0 });
    expect(direct!.error).toContain("169.254.169.254 is link-local");
    expect(redirected!.reachable).toBe(false);
    expect(redirected!.error).toContain("link-local");
    expect(unspecified!.reachable).toBe(false);
    expect(unspecified!.error).toContain("0.0.0.0 is unspecified");
    expect(mapped!.error).toContain("link-local");
    // 0.0.0.0 would have reached this very server: it was never asked for /secret.
    expect(hits).not.toContain("/secret");
    // Loopback (and private ranges) stay allowed.
    expect(fine).toMatchObject({ reachable: true, httpStatus: 200 });
  });

  test("a name is checked by what it resolves to, and the connection goes to that address", async () => {
    const to = (address: string, family: number) =>
      createGuardedFetch({ resolve: (_h, _o, cb) => cb(null, [{ address, family }]) });
    const refused = await to("169.254.169.254", 4)(`http://metadata.internal.test:${port}/x`, { method: "HEAD" }).catch((e: Error) => e.message);
    expect(refused).toContain("metadata.internal.test resolves to 169.254.169.254 is link-local");
    const local = await to("127.0.0.1", 4)(`http://files.internal.test:${port}/resolved.gguf`, { method: "HEAD" });
    expect(local.status).toBe(200);
    expect(hits).toContain("/resolved.gguf");
  });

  test("addressProblem: link-local and unspecified, IPv4-mapped too; private, loopback and public pass", () => {
    for (const bad of ["169.254.169.254", "169.254.0.1", "fe80::1", "febf::ffff", "0.0.0.0", "0.1.2.3", "::", "::ffff:169.254.169.254"])
      expect(`${bad}: ${addressProblem(bad) !== undefined}`).toBe(`${bad}: true`);
    for (const ok of ["10.0.0.5", "192.168.1.2", "172.16.0.1", "127.0.0.1", "::1", "8.8.8.8", "2001:db8::1", "fd00::1"])
      expect(`${ok}: ${addressProblem(ok) !== undefined}`).toBe(`${ok}: false`);
  });
});
