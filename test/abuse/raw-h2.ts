import http2 from "node:http2";

/** How a raw HTTP/2 call ended: HTTP status, gRPC status and message (from trailers or headers), body bytes. */
export interface RawH2Result {
  status: number;
  grpcStatus?: string;
  grpcMessage?: string;
  body: Buffer;
}

/** A gRPC-style envelope: flag byte, 32-bit big-endian length, then the payload (the length may lie). */
export function envelope(flag: number, length: number, payload: Uint8Array = new Uint8Array()): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, length >>> 0);
  out.set(payload, 5);
  return out;
}

/** POSTs raw bytes over HTTP/2 cleartext (prior knowledge), the way a broken or hostile client would. */
export function rawH2(baseUrl: string, path: string, contentType: string, chunks: Uint8Array[]): Promise<RawH2Result> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    const result: RawH2Result = { status: 0, body: Buffer.alloc(0) };
    const parts: Buffer[] = [];
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) result.grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) result.grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", (h) => {
      result.status = Number(h[":status"]);
      take(h);
    });
    req.on("trailers", take);
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("error", reject);
    req.on("close", () => {
      result.body = Buffer.concat(parts);
      session.close();
      resolve(result);
    });
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/**
 * Opens a stream, writes `chunks` and then neither reads nor closes it: a half-open peer. Returns a
 * function that finally tears it down.
 */
export function halfOpenH2(baseUrl: string, path: string, contentType: string, chunks: Uint8Array[]): { close(): void } {
  const session = http2.connect(baseUrl);
  session.on("error", () => {});
  const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
  req.on("error", () => {});
  req.pause();
  for (const c of chunks) req.write(c);
  return {
    close() {
      req.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}
