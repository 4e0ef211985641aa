import { describe, expect, test } from "bun:test";
import { readSse, type SseEvent } from "../../../worker/engines/sse.js";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      controller.close();
    },
  });
}

async function collect(chunks: string[]): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const ev of readSse(streamOf(chunks))) out.push(ev);
  return out;
}

describe("readSse", () => {
  test("data events, comments (pings) and [DONE]", async () => {
    expect(await collect([": ping\n\n", 'data: {"a":1}\n\n', ":keep-alive\n", "data: [DONE]\n\n"])).toEqual([
      { event: "message", data: '{"a":1}' },
      { event: "message", data: "[DONE]" },
    ]);
  });

  test("multi-line data, named events and CRLF / CR line ends", async () => {
    expect(await collect(["event: update\r\ndata: one\r\ndata: two\r\n\r\n", "data:three\r\rdata: four\n\n"])).toEqual([
      { event: "update", data: "one\ntwo" },
      { event: "message", data: "three" },
      { event: "message", data: "four" },
    ]);
  });

  test("events split across chunks, a CRLF split between chunks, and a multi-byte character split", async () => {
    const bytes = new TextEncoder().encode('data: {"t":"héllo"}\r\n\r\n');
    const split = bytes.indexOf(0xc3) + 1;
    const decoder = new TextDecoder();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, split));
        controller.enqueue(bytes.subarray(split, bytes.length - 3));
        controller.enqueue(bytes.subarray(bytes.length - 3, bytes.length - 1));
        controller.enqueue(bytes.subarray(bytes.length - 1));
        controller.close();
      },
    });
    const out: SseEvent[] = [];
    for await (const ev of readSse(stream)) out.push(ev);
    expect(out).toEqual([{ event: "message", data: decoder.decode(new TextEncoder().encode('{"t":"héllo"}')) }]);
  });

  test("an `error:` line (older llama-server builds) is an error event; a last event without a blank line is kept", async () => {
    expect(await collect(['data: {"content":"a"}\n\n', 'error: {"code":500,"message":"boom"}\n\n', "data: tail"])).toEqual([
      { event: "message", data: '{"content":"a"}' },
      { event: "error", data: '{"code":500,"message":"boom"}' },
      { event: "message", data: "tail" },
    ]);
  });
});
