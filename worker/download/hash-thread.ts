/**
 * SHA-256 on a second thread, fed with views of shared memory (no copies):
 * the download's receiving, block copying and write issuing stay on the main
 * thread while the hash, the largest single cost per GiB, runs beside them.
 */

/** The worker's body. Self-contained (it runs from its source text), so it can start from a blob: URL inside a compiled binary too. */
function hashThreadMain(): void {
  type Request = { id: number; op: "update"; buffer: SharedArrayBuffer; offset: number; length: number } | { id: number; op: "digest" | "reset" };
  let hash = new Bun.CryptoHasher("sha256");
  self.onmessage = (event: MessageEvent<Request>) => {
    const m = event.data;
    try {
      if (m.op === "update") {
        hash.update(new Uint8Array(m.buffer, m.offset, m.length));
        postMessage({ id: m.id });
      } else {
        postMessage(m.op === "digest" ? { id: m.id, hex: hash.digest("hex") } : { id: m.id });
        hash = new Bun.CryptoHasher("sha256");
      }
    } catch (err) {
      postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
    }
  };
}

let workerUrl: string | undefined;

/** A blob: URL of the worker's source, made once per process (bun build --compile bundles no separate worker file). */
function hashThreadUrl(): string {
  workerUrl ??= URL.createObjectURL(new Blob([`(${hashThreadMain.toString()})();`], { type: "application/javascript" }));
  return workerUrl;
}

/** A view whose bytes live in a SharedArrayBuffer, so another thread can read them. */
export type SharedBytes = Uint8Array<SharedArrayBuffer>;

/** Bytes in shared memory: `length` zeroed bytes, page-aligned in practice (the allocator maps buffers this large). */
export function sharedBytes(length: number): SharedBytes {
  return new Uint8Array(new SharedArrayBuffer(length));
}

/**
 * One SHA-256 computed on a worker thread. update() returns once the worker
 * has read the bytes (the caller may reuse the buffer then); updates are
 * applied in call order. A worker that fails makes every pending and later
 * call reject.
 */
export class HashThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (hex: string | undefined) => void; reject: (err: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor() {
    this.worker = new Worker(hashThreadUrl());
    this.worker.onmessage = (event: MessageEvent<{ id: number; hex?: string; error?: string }>) => {
      const { id, hex, error } = event.data;
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      if (error !== undefined) waiter?.reject(new Error(`hash thread: ${error}`));
      else waiter?.resolve(hex);
    };
    this.worker.onerror = (event) => this.fail(new Error(`hash thread failed: ${event.message}`));
  }

  /** Hashes `bytes` next; resolves once they have been read. */
  async update(bytes: SharedBytes): Promise<void> {
    if (bytes.byteLength === 0) return;
    await this.call({ op: "update", buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength });
  }

  /** The lower-case hex digest of everything updated since the last digest; the next update starts a new hash. */
  async digest(): Promise<string> {
    return (await this.call({ op: "digest" }))!;
  }

  /** Starts a new hash; updates sent before are dropped (messages are handled in order). */
  async reset(): Promise<void> {
    await this.call({ op: "reset" });
  }

  /** Whether a call has failed (the thread is then of no further use). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Lets the process exit while this thread idles (a pooled thread), or keeps it alive again. */
  keepAlive(on: boolean): void {
    // Bun's Worker has Node's ref/unref; the DOM typings it is declared with do not.
    const worker = this.worker as Worker & { ref(): void; unref(): void };
    if (on) worker.ref();
    else worker.unref();
  }

  /** Stops the thread; pending calls reject. */
  close(): void {
    this.fail(new Error("hash thread closed"));
    void this.worker.terminate();
  }

  private call(message: Record<string, unknown>): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...message });
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }
}

/**
 * Hash threads kept between downloads (starting one costs a few milliseconds
 * and about 5 MB): a download borrows one and gives it back; at most `maxIdle`
 * wait, unreferenced so that they never keep the process alive.
 */
export class HashThreadPool {
  private readonly idle: HashThread[] = [];

  constructor(private readonly maxIdle = 2) {}

  acquire(): HashThread {
    const thread = this.idle.pop() ?? new HashThread();
    thread.keepAlive(true);
    return thread;
  }

  release(thread: HashThread): void {
    if (thread.failed || this.idle.length >= this.maxIdle) return thread.close();
    thread.keepAlive(false);
    this.idle.push(thread);
  }
}
