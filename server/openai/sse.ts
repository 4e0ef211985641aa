import type * as http from "node:http";
import type { HttpResponse } from "../http/http-routes.js";

/** How long an open event stream may stay silent before a comment line keeps proxies from closing it. */
export const SSE_KEEPALIVE_MS = 15_000;

/**
 * A Server-Sent Events response: headers once, then `data:` events written as they come (no
 * buffering in the studio: each write goes to the socket), a comment line when it has been
 * quiet for a while, and `data: [DONE]` at the end as OpenAI's streams have.
 */
export class SseWriter {
  #open = false;
  #ended = false;
  #lastWrite = 0;
  #keepalive: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly res: HttpResponse,
    private readonly headers: Record<string, string> = {},
  ) {}

  get started(): boolean {
    return this.#open;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Sends the 200 and the event-stream headers (once); with `first`, in one write with that event. */
  start(first?: string): void {
    if (this.#open || this.#ended) return;
    this.#open = true;
    const w = this.res as http.ServerResponse;
    w.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      // nginx and similar proxies buffer responses unless told not to.
      "x-accel-buffering": "no",
      ...this.headers,
    });
    // Headers go out now, with the first event when there is one (one write): the client knows its request was taken.
    if (first !== undefined) w.write(`data: ${first}\n\n`);
    else w.flushHeaders?.();
    this.#lastWrite = Date.now();
    this.#keepalive = setInterval(() => {
      if (Date.now() - this.#lastWrite >= SSE_KEEPALIVE_MS) this.#write(": keep-alive\n\n");
    }, SSE_KEEPALIVE_MS / 3);
    this.#keepalive.unref?.();
  }

  /** One event whose data is already JSON text (the hot path builds it without a generic stringify). */
  data(json: string): void {
    this.start();
    this.#write(`data: ${json}\n\n`);
  }

  /** The last events, `data: [DONE]` and the end of the response, in one write. */
  done(last: string[] = []): void {
    if (this.#ended) return;
    this.start();
    this.#ended = true;
    clearInterval(this.#keepalive);
    this.res.end(`${last.map((json) => `data: ${json}\n\n`).join("")}data: [DONE]\n\n`);
  }

  /** Ends the response (without [DONE]: after an error event, or when the client is gone). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#keepalive);
    if (this.#open) this.res.end();
  }

  #write(text: string): void {
    if (this.#ended) return;
    this.#lastWrite = Date.now();
    (this.res as http.ServerResponse).write(text);
  }
}
