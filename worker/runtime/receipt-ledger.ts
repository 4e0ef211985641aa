import type { Receipt } from "../../gen/studio/v1/worker_service_pb.js";
import { SessionClosedError } from "../session/outbox.js";

/** The messages the studio answers with a receipt. */
export type ReceiptKind = "decline" | "complete" | "fail";

interface Awaited {
  sessionId: number;
  kind: ReceiptKind;
  resolve(r: Receipt): void;
  reject(e: Error): void;
}

/** No receipt came in time. */
export class ReceiptTimeout extends Error {
  readonly code = "receipt_timeout";
  constructor(kind: ReceiptKind, ms: number) {
    super(`no receipt for ${kind} in ${ms} ms`);
    this.name = "ReceiptTimeout";
  }
}

/**
 * Matches one job's receipts to what it sent. A receipt names the job and lease but not the
 * message it answers; the studio answers a session's messages in order, so receipts are matched
 * first in, first out per session, and a reconnect drops what the old session still owed.
 */
export class ReceiptLedger {
  private awaiting: Awaited[] = [];

  /** Registers a message about to be sent on a session; resolves with its receipt. */
  expect(sessionId: number, kind: ReceiptKind, timeoutMs?: number): Promise<Receipt> {
    const answer = new Promise<Receipt>((resolve, reject) => this.awaiting.push({ sessionId, kind, resolve, reject }));
    if (timeoutMs === undefined) return answer;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ReceiptTimeout(kind, timeoutMs)), timeoutMs)));
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }

  /** Hands a receipt to the oldest message waiting on its session; false when none was waiting. */
  match(receipt: Receipt, sessionId: number): boolean {
    this.awaiting = this.awaiting.filter((a) => a.sessionId === sessionId);
    const entry = this.awaiting.shift();
    entry?.resolve(receipt);
    return entry !== undefined;
  }

  /** The session ended: what it still owed will never come. */
  sessionClosed(sessionId: number): void {
    const gone = this.awaiting.filter((a) => a.sessionId === sessionId);
    this.awaiting = this.awaiting.filter((a) => a.sessionId !== sessionId);
    for (const a of gone) a.reject(new SessionClosedError());
  }

  /** Gives up on every receipt (the job is no longer ours). */
  rejectAll(reason: Error): void {
    for (const a of this.awaiting.splice(0)) a.reject(reason);
  }
}
