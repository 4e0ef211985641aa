import type { RequestGate } from "../context.js";
import { nodeRequestKey } from "./peer-context.js";

/**
 * Wraps the request gate so that a call it refuses over HTTP/1.1 before its body has arrived is
 * answered at once with `Connection: close`. Without that header connect-node reads up to 256 KiB
 * of the unread body before it writes the answer (to keep the connection reusable), so a caller
 * sending slowly would hold its refusal, and a connection, for as long as it liked. HTTP/2 needs
 * nothing: connect-node resets the refused stream once the answer is out.
 */
export function answerRefusalsAtOnce(gate: RequestGate): RequestGate {
  return function earlyRefusal(ctx) {
    const refused = (err: unknown): never => {
      const req = ctx.values.get(nodeRequestKey);
      if (req && req.httpVersionMajor === 1 && !req.complete) ctx.responseHeader.set("connection", "close");
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
