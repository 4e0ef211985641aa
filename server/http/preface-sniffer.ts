import type * as net from "node:net";

/** The start of the HTTP/2 connection preface (RFC 9113 §3.4) a cleartext h2c client sends first. */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0", "latin1");

/** What the first bytes of a cleartext connection said. */
export type SniffResult = "h2" | "http1" | "silent";

/**
 * Reads a cleartext socket's first bytes until they decide the protocol: the HTTP/2 preface
 * (which may come in pieces, so a matching prefix waits for more) or anything else (HTTP/1.1).
 * Whatever was read is pushed back onto the socket for the server that takes it. A socket that
 * ends, or (when timeoutMs is given) sends nothing decisive within it, is "silent": the caller
 * destroys it. The listener passes no timeout: its connection guard's deadline covers sniffing.
 */
export function sniffPreface(socket: net.Socket, timeoutMs?: number): Promise<SniffResult> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const finish = (result: SniffResult) => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onGone);
      socket.off("close", onGone);
      if (result !== "silent" && buffered.length > 0) socket.unshift(buffered);
      resolve(result);
    };
    const onReadable = () => {
      for (let chunk: Buffer | null; (chunk = socket.read()) !== null; ) buffered = Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, H2_PREFACE.length);
      if (n === 0) return;
      const matches = buffered.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (!matches) finish("http1");
      else if (n === H2_PREFACE.length) finish("h2");
    };
    const onGone = () => finish("silent");
    const timer = timeoutMs === undefined ? undefined : setTimeout(onGone, timeoutMs);
    socket.on("readable", onReadable);
    socket.once("end", onGone);
    socket.once("close", onGone);
  });
}
