import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OutputError } from "../../server/outputs/output-error.js";
import { FileBlobs } from "../../server/outputs/file-blobs.js";
import { OutputStore } from "../../server/outputs/output-store.js";
import { OutputStaging } from "../../server/outputs/output-staging.js";
import { JobOutputSchema } from "../../gen/studio/v1/job_pb.js";

let dir: string;
let store: OutputStore;
const digest = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");
const tmpFiles = () => readdirSync(join(dir, "outputs", ".tmp"));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outputs-"));
  store = new OutputStore(dir, 100);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("verified bytes are stored at outputs/<sha[0:2]>/<sha> only when promoted, once per digest", async () => {
  const data = new TextEncoder().encode("hello outputs");
  const sha = digest(data);
  const up = store.begin(data.byteLength, sha);
  up.write(0, data.subarray(0, 5));
  up.write(5, data.subarray(5));
  const verified = up.finish();
  expect(verified).toMatchObject({ sha256: sha, size: data.byteLength });
  expect(await store.has(sha)).toBe(false);
  expect(await store.promote(verified)).toBe(true);
  expect(readFileSync(join(dir, "outputs", sha.slice(0, 2), sha), "utf8")).toBe("hello outputs");
  await store.put(data, sha);
  expect(await store.sizeOf(sha)).toBe(data.byteLength);
  expect(tmpFiles()).toEqual([]);
});

test("refuses bad digests, sizes and offsets and leaves no temp file", () => {
  const data = new Uint8Array([1, 2, 3, 4]);
  const refuse = (fn: () => void, code: OutputError["code"]) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(OutputError);
      expect((err as OutputError).code).toBe(code);
      return;
    }
    throw new Error("expected a refusal");
  };
  refuse(() => store.begin(101, digest(data)), "resource_exhausted");
  refuse(() => store.begin(4, "ABC"), "invalid_argument");
  refuse(() => store.verify(data, digest(new Uint8Array([9]))), "invalid_argument");
  const gap = store.begin(4, digest(data));
  gap.write(0, data.subarray(0, 2));
  refuse(() => gap.write(3, data.subarray(3)), "invalid_argument");
  const over = store.begin(2, digest(data));
  refuse(() => over.write(0, data), "invalid_argument");
  const short = store.begin(4, digest(data));
  short.write(0, data.subarray(0, 3));
  refuse(() => short.finish(), "invalid_argument");
  expect(tmpFiles()).toEqual([]);
  expect(readdirSync(join(dir, "outputs")).filter((d) => d !== ".tmp")).toEqual([]);
});

test("a large verified output waits in a temp file: discard removes it, promote renames it into place", async () => {
  store = new OutputStore(dir, 4 * 1024 * 1024);
  const data = new Uint8Array(2 * 1024 * 1024 + 3).map((_, i) => (i * 13) & 0xff);
  const sha = digest(data);
  const upload = () => {
    const up = store.begin(data.byteLength, sha);
    for (let off = 0; off < data.byteLength; off += 1024 * 1024) up.write(off, data.subarray(off, off + 1024 * 1024));
    return up.finish();
  };
  const dropped = upload();
  expect(dropped.file).toBeDefined();
  expect(tmpFiles()).toHaveLength(1);
  store.discard(dropped);
  expect(tmpFiles()).toEqual([]);
  expect(await store.has(sha)).toBe(false);
  expect(await store.promote(upload())).toBe(true);
  expect(await store.promote(upload())).toBe(false);
  expect(tmpFiles()).toEqual([]);
  expect([...(store.blobs as FileBlobs).storedDigests()]).toEqual([sha]);
  expect(readFileSync(join(dir, "outputs", sha.slice(0, 2), sha)).equals(Buffer.from(data))).toBe(true);
  const read: Uint8Array[] = [];
  for await (const chunk of store.openRead(sha)) read.push(chunk);
  expect(Buffer.concat(read).equals(Buffer.from(data))).toBe(true);
});

describe("OutputStaging", () => {
  const staged = (data: Uint8Array, index = 0) => ({
    meta: create(JobOutputSchema, { index, sha256: digest(data), sizeBytes: BigInt(data.byteLength) }),
    verified: store.verify(data, digest(data)),
  });

  test("holds small outputs in memory up to its budget, then in temp files; drop frees both", () => {
    const staging = new OutputStaging(store, 10);
    staging.add("lease-a", staged(new Uint8Array(8).fill(1), 0));
    staging.add("lease-a", staged(new Uint8Array(8).fill(2), 1));
    expect(staging.memoryBytes).toBe(8);
    expect(tmpFiles()).toHaveLength(1);
    expect(staging.stagedBytes("lease-a")).toBe(16);
    // A second upload of an index replaces the first (its file or memory is freed).
    staging.add("lease-a", staged(new Uint8Array(8).fill(3), 1));
    expect(tmpFiles()).toHaveLength(1);
    staging.drop("lease-a");
    expect(staging.memoryBytes).toBe(0);
    expect(tmpFiles()).toEqual([]);
    expect(staging.leaseCount).toBe(0);
  });

  test("commit moves the outputs into the store before the row; a failed row removes the files it created", async () => {
    const referenced = new Set<string>();
    const root = join(dir, "outputs");
    store = new OutputStore(dir, 100, new FileBlobs(root, { isReferenced: (sha) => referenced.has(sha), referencedDigests: () => referenced }, join(root, ".tmp")));
    const staging = new OutputStaging(store);
    const a = new Uint8Array([1, 1]);
    const b = new Uint8Array([2, 2]);
    const seen: boolean[] = [];
    await expect(
      staging.commit([staged(a)], async () => {
        seen.push(await store.has(digest(a)));
        throw new Error("lease lost");
      }),
    ).rejects.toThrow("lease lost");
    expect(seen).toEqual([true]);
    expect(await store.has(digest(a))).toBe(false);
    // A digest some job references stays, even when this commit created its file.
    referenced.add(digest(b));
    await expect(staging.commit([staged(b)], async () => Promise.reject(new Error("lost")))).rejects.toThrow("lost");
    expect(await store.has(digest(b))).toBe(true);
    expect(await staging.commit([staged(a)], async () => "row")).toBe("row");
    expect(await store.has(digest(a))).toBe(true);
    expect(tmpFiles()).toEqual([]);
  });
});
