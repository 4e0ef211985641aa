import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http from "node:http";
import { gunzipSync } from "node:zlib";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const ADMIN = "web-module-test-admin-token-0123456789abcdef";

describe("web module", () => {
  let t: TestStudio;
  beforeAll(async () => {
    t = await startTestStudio({ adminToken: ADMIN });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const assetPaths = async () => {
    const html = await (await fetch(`${t.url}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    return { script: script!, style: style! };
  };

  test("serves the page shell at / without a token, revalidated and locked down by CSP", async () => {
    const res = await fetch(`${t.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html).toContain('<main id="main"');
    expect(html).not.toContain("<!-- script -->");
    expect(html).not.toMatch(/https?:\/\//); // no CDN: every file comes from the studio
  });

  test("serves hashed assets with their content types, immutable caching, gzip and ETags", async () => {
    const { script, style } = await assetPaths();
    const js = await fetch(`${t.url}${script}`, { headers: { "accept-encoding": "identity" } });
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("content-encoding")).toBeNull();
    const body = new Uint8Array(await js.arrayBuffer());
    expect(body.byteLength).toBeGreaterThan(1000);

    const css = await fetch(`${t.url}${style}`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");

    // node:http keeps gzip bytes as sent when asked through a raw request; fetch would decode them.
    const zipped = await new Promise<{ encoding: string | undefined; bytes: Buffer }>((resolve, reject) => {
      http
        .get(`${t.url}${script}`, { headers: { "accept-encoding": "gzip" } }, (res) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => resolve({ encoding: res.headers["content-encoding"], bytes: Buffer.concat(parts) }));
        })
        .on("error", reject);
    });
    expect(zipped.encoding).toBe("gzip");
    expect(new Uint8Array(gunzipSync(zipped.bytes))).toEqual(body);

    const etag = js.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    const again = await fetch(`${t.url}${script}`, { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
  });

  test("answers HEAD without a body, and 404 for unknown or path-like asset names", async () => {
    const { script } = await assetPaths();
    const head = await fetch(`${t.url}${script}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    expect((await fetch(`${t.url}/assets/nope-123.js`)).status).toBe(404);
    expect((await fetch(`${t.url}/assets/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${t.url}/assets/`)).status).toBe(404);
  });

  test("the page is open but what it shows is not: RPCs still need the token", async () => {
    const res = await fetch(`${t.url}/studio.v1.RegistryService/ListModels`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
  });
});
