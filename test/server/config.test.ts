import { describe, expect, test } from "bun:test";
import { ServerConfigSchema } from "../../server/config.js";

describe("server config: heartbeat against lease TTL", () => {
  test("a heartbeat interval over half the lease TTL is refused, naming both flags", () => {
    for (const [heartbeatIntervalMs, leaseTtlMs] of [[600, 1000], [20_000, 30_000], ["15001", "30000"]] as const) {
      const r = ServerConfigSchema.safeParse({ heartbeatIntervalMs, leaseTtlMs });
      expect(r.success).toBe(false);
      const message = r.error!.issues.map((i) => i.message).join("; ");
      expect(message).toContain("--heartbeat-interval-ms");
      expect(message).toContain("--lease-ttl-ms");
      expect(message).toContain(String(heartbeatIntervalMs));
    }
  });

  test("half the TTL or less is accepted, and so are the defaults", () => {
    expect(ServerConfigSchema.parse({ heartbeatIntervalMs: 500, leaseTtlMs: 1000 }).heartbeatIntervalMs).toBe(500);
    expect(ServerConfigSchema.parse({ heartbeatIntervalMs: "150", leaseTtlMs: "600" }).leaseTtlMs).toBe(600);
    const d = ServerConfigSchema.parse({});
    expect(d.heartbeatIntervalMs).toBeLessThanOrEqual(d.leaseTtlMs / 2);
  });
});
