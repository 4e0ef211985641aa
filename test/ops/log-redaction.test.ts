import { describe, expect, test } from "bun:test";
import { createLogger, redactNestedSecrets } from "../../server/log.js";

/** A logger at info whose lines are parsed into the returned array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { logger, lines };
}

describe("log redaction", () => {
  test("secrets are censored at the top level, one level down and in nested headers; other fields are kept", () => {
    const { logger, lines } = capture();
    logger.info(
      {
        token: "t0",
        secret: "s0",
        authorization: "Bearer a0",
        adminToken: "ad0",
        rpc: "JobService/CreateJob",
        ms: 3,
        req: { headers: { authorization: "Bearer a1", host: "x" }, token: "t1", path: "/p" },
        config: { adminToken: "ad1", port: 8080 },
      },
      "line",
    );
    expect(lines[0]).toMatchObject({
      token: "[redacted]",
      secret: "[redacted]",
      authorization: "[redacted]",
      adminToken: "[redacted]",
      rpc: "JobService/CreateJob",
      ms: 3,
      req: { headers: { authorization: "[redacted]", host: "x" }, token: "[redacted]", path: "/p" },
      config: { adminToken: "[redacted]", port: 8080 },
      msg: "line",
    });
  });

  test("the caller's objects are not changed, and a line without secrets is passed through as it is", () => {
    const req = { headers: { authorization: "Bearer a1" }, token: "t1" };
    const fields = { req };
    const { logger, lines } = capture();
    logger.info(fields, "line");
    expect(req).toEqual({ headers: { authorization: "Bearer a1" }, token: "t1" });
    expect(JSON.stringify(lines[0])).not.toContain("a1");
    const clean = { rpc: "x", nested: { ok: true }, list: [1] };
    expect(redactNestedSecrets(clean)).toBe(clean);
  });

  test("an error carrying a token keeps its type, message and stack, without the token", () => {
    const { logger, lines } = capture();
    const err = Object.assign(new TypeError("boom"), { token: "etok", code: "E1" });
    logger.error({ err }, "failed");
    const logged = lines[0]!.err as Record<string, unknown>;
    expect(logged).toMatchObject({ type: "TypeError", message: "boom", token: "[redacted]", code: "E1" });
    expect(String(logged.stack)).toContain("boom");
    expect(err.token).toBe("etok");
  });

  test("child bindings are censored too, also in a child's child", () => {
    const { logger, lines } = capture();
    const child = logger.child({ module: "auth", token: "t2", cfg: { secret: "s2" } });
    child.child({ sub: { authorization: "Bearer a3" } }).info({ n: 1 }, "deep");
    const text = JSON.stringify(lines[0]);
    for (const leaked of ["t2", "s2", "a3"]) expect(text).not.toContain(leaked);
    expect(lines[0]).toMatchObject({ module: "auth", n: 1, msg: "deep" });
  });
});
