/** One server-sent event: its `event` name ("message" when unnamed) and its data lines joined with "\n". */
export interface SseEvent {
  event: string;
  data: string;
}

/**
 * Parses a server-sent event stream (WHATWG HTML, "event stream interpretation"): lines end in CRLF,
 * LF or CR; lines starting with ':' are comments (keep-alive pings); `data:` lines accumulate and a
 * blank line dispatches. A non-standard `error: {...}` line, which older llama-server builds write
 * mid-stream, is dispatched as an event named "error".
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  let event = "";
  const dispatch = (): SseEvent | undefined => {
    const out = data.length > 0 ? { event: event || "message", data: data.join("\n") } : undefined;
    data = [];
    event = "";
    return out;
  };
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (;;) {
        const match = /\r\n|\n|\r/.exec(buffer);
        if (!match) break;
        if (match[0] === "\r" && match.index === buffer.length - 1 && !done) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          const ev = dispatch();
          if (ev) yield ev;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "error") {
          event = "error";
          data.push(value);
        }
      }
      if (done) {
        if (buffer !== "" && !buffer.startsWith(":")) {
          const colon = buffer.indexOf(":");
          if (colon !== -1 && buffer.slice(0, colon) === "data") data.push(buffer.slice(colon + 1).replace(/^ /, ""));
        }
        const ev = dispatch();
        if (ev) yield ev;
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
