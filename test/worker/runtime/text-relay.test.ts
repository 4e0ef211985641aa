import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { SessionRequestSchema, WelcomeSchema, type SessionRequest } from "../../../gen/studio/v1/worker_service_pb.js";
import { Outbox } from "../../../worker/session/outbox.js";
import type { LiveSession, SessionMessage } from "../../../worker/session/session-client.js";
import { TextRelay } from "../../../worker/runtime/text-relay.js";

/** A live session over a real Outbox, whose messages a test takes when it wants (as a slow stream would). */
function session() {
  const outbox = new Outbox<SessionRequest>();
  const wrap = (message: SessionMessage) => create(SessionRequestSchema, { message });
  const live: LiveSession = {
    id: 1,
    welcome: create(WelcomeSchema),
    send: (m) => outbox.send(wrap(m)),
    post: (m) => outbox.post(wrap(m)),
    postOrMerge: (m, merge) => outbox.postOrMerge(wrap(m), (w) => merge(w.message)),
    get isClosed() {
      return outbox.isClosed;
    },
  };
  const it = outbox[Symbol.asyncIterator]();
  /** The messages waiting now, taken as the stream would take them. */
  const take = async (n: number) => {
    const out: SessionRequest[] = [];
    for (let i = 0; i < n; i++) out.push((await it.next()).value as SessionRequest);
    return out.map((m) => (m.message.case === "textDelta" ? m.message.value : undefined)!);
  };
  return { sessions: { session: live, waitForSession: async () => live }, take, outbox };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("the worker's text relay", () => {
  test("the first piece goes out at once, with the lease, attempt and offsets; pieces while it waits join it", async () => {
    const s = session();
    const relay = new TextRelay({ jobId: "j", leaseId: "l", attempt: 2 }, s.sessions);
    relay.push({ kind: "text", content: "Hé", tokens: 1 });
    relay.push({ kind: "text", content: "llo", tokens: 2 });
    const [first] = await s.take(1);
    expect([first!.jobId, first!.leaseId, first!.delta?.attempt, first!.delta?.text, Number(first!.delta?.textOffset), first!.delta?.tokens]).toEqual(["j", "l", 2, "Héllo", 0, 2]);
    // Taken by the stream: the next piece is a message of its own, continuing at byte 6.
    relay.push({ kind: "text", content: "!", tokens: 3 });
    const [second] = await s.take(1);
    expect([second!.delta?.text, Number(second!.delta?.textOffset), second!.delta?.tokens]).toEqual(["!", 6, 3]);
  });

  test("a message still waiting in the session's queue takes every next piece in", async () => {
    const s = session();
    const relay = new TextRelay({ jobId: "j", leaseId: "l", attempt: 1 }, s.sessions);
    for (let i = 0; i < 50; i++) {
      relay.push({ kind: "text", content: `t${i} `, tokens: i + 1 });
      await nextTurn();
    }
    const [only] = await s.take(1);
    expect(only!.delta?.text).toBe(Array.from({ length: 50 }, (_, i) => `t${i} `).join(""));
    expect(only!.delta?.tokens).toBe(50);
  });

  test("reasoning after text starts a new message, so neither is reordered", async () => {
    const s = session();
    const relay = new TextRelay({ jobId: "j", leaseId: "l", attempt: 1 }, s.sessions);
    relay.push({ kind: "reasoning", content: "think", tokens: 1 });
    relay.push({ kind: "text", content: "say", tokens: 2 });
    relay.push({ kind: "reasoning", content: "again", tokens: 3 });
    const [a, b] = await s.take(2);
    expect([a!.delta?.reasoning, a!.delta?.text]).toEqual(["think", "say"]);
    expect([b!.delta?.reasoning, b!.delta?.text, Number(b!.delta?.reasoningOffset), Number(b!.delta?.textOffset)]).toEqual(["again", "", 5, 3]);
  });

  test("another job's waiting message is never merged into", async () => {
    const s = session();
    const one = new TextRelay({ jobId: "j1", leaseId: "l1", attempt: 1 }, s.sessions);
    const two = new TextRelay({ jobId: "j2", leaseId: "l2", attempt: 1 }, s.sessions);
    one.push({ kind: "text", content: "a", tokens: 1 });
    two.push({ kind: "text", content: "b", tokens: 1 });
    one.push({ kind: "text", content: "c", tokens: 2 });
    const [a, b, c] = await s.take(3);
    expect([a!.jobId, a!.delta?.text, b!.jobId, b!.delta?.text, c!.jobId, c!.delta?.text]).toEqual(["j1", "a", "j2", "b", "j1", "c"]);
  });
});
