import { connectErrorOf } from "../ops/rpc-errors.js";

/** Left for job-service.ts until its handlers drop the wrapper: the error interceptor (ops/rpc-errors.ts) maps JobErrors. */
export const jobConnectError = connectErrorOf;

/** Runs fn, turning job domain errors into Connect errors (see jobConnectError). */
export async function atJobEdge<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw connectErrorOf(err);
  }
}
