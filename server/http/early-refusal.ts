import type { RequestGate } from "../context.js";
import { nodeRequestKey } from "./peer-context.js";

/** connect-node reads (and drops) up to this much of a refused HTTP/1.1 request's body before it answers. */
const DRAINED_BYTES = 256 * 1024;

/**
 * Wraps the request gate for calls it refuses over HTTP/1.1 before their body has all arrived.
 * connect-node then reads (and drops) up to 256 KiB of the rest before it answers, so that the
 * connection can be reused; nothing is parsed. A body announced larger than that is answered at
 * once with `Connection: close` instead (a caller announcing megabytes and sending them slowly
 * would otherwise hold its answer and a connection as long as it liked). A smaller body, or one of
 * unknown length (chunked), is left to that drain, since closing at once would make a client still
 * writing it see EPIPE instead of the answer; but its connection is destroyed if the body is still
 * incomplete after drainGraceMs. HTTP/2 needs nothing: connect-node resets the refused stream.
 */
export function answerRefusalsAtOnce(gate: RequestGate, { drainGraceMs }: { drainGraceMs: number }): RequestGate {
  return function earlyRefusal(ctx) {
    const refused = (err: unknown): never => {
      const req = ctx.values.get(nodeRequestKey);
      if (req && req.httpVersionMajor === 1 && !req.complete) {
        const declared = Number(req.headers["content-length"] ?? Number.NaN);
        if (declared > DRAINED_BYTES) ctx.responseHeader.set("connection", "close");
        else {
          const socket = req.socket;
          setTimeout(() => {
            if (!req.complete) socket.destroy();
          }, drainGraceMs).unref?.();
        }
      }
      throw err;
    };
    try {
      const passed = gate(ctx);
      return passed instanceof Promise ? passed.catch(refused) : passed;
    } catch (err) {
      return refused(err);
    }
  };
}
