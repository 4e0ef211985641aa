import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ReceiptSchema } from "../../../gen/studio/v1/worker_service_pb.js";
import { SessionClosedError } from "../../../worker/session/outbox.js";
import { ReceiptLedger, ReceiptTimeout } from "../../../worker/runtime/receipt-ledger.js";

const receipt = (ok: boolean, message = "") => create(ReceiptSchema, { jobId: "j", leaseId: "l", ok, message });

describe("ReceiptLedger", () => {
  test("receipts answer a session's messages in the order they were sent", async () => {
    const ledger = new ReceiptLedger();
    const decline = ledger.expect(1, "decline");
    const complete = ledger.expect(1, "complete");
    expect(ledger.match(receipt(true, "first"), 1)).toBe(true);
    expect(ledger.match(receipt(false, "second"), 1)).toBe(true);
    expect((await decline).message).toBe("first");
    expect((await complete).message).toBe("second");
    expect(ledger.match(receipt(false, "nobody asked"), 1)).toBe(false);
  });

  test("a new session drops what the old one owed; a closed session rejects its waiters", async () => {
    const ledger = new ReceiptLedger();
    const old = ledger.expect(1, "fail");
    ledger.sessionClosed(1);
    await expect(old).rejects.toBeInstanceOf(SessionClosedError);
    const stale = ledger.expect(2, "decline");
    stale.catch(() => {});
    const fresh = ledger.expect(3, "complete");
    expect(ledger.match(receipt(true, "on session 3"), 3)).toBe(true);
    expect((await fresh).message).toBe("on session 3");
  });

  test("a receipt that does not come in time rejects with ReceiptTimeout; rejectAll gives up on all", async () => {
    const ledger = new ReceiptLedger();
    await expect(ledger.expect(1, "complete", 10)).rejects.toBeInstanceOf(ReceiptTimeout);
    const waiting = ledger.expect(1, "fail");
    ledger.rejectAll(new Error("lease lost"));
    await expect(waiting).rejects.toThrow("lease lost");
  });
});
