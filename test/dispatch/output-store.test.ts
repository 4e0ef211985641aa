import { afterEach, beforeEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OutputError } from "../../server/outputs/output-error.js";
import { OutputStore } from "../../server/outputs/output-store.js";

let dir: string;
let store: OutputStore;
const digest = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");
const tmpFiles = () => readdirSync(join(dir, "outputs", ".tmp"));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outputs-"));
  store = new OutputStore(dir, 100);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("verified bytes are stored at outputs/<sha[0:2]>/<sha> only when promoted, once per digest", () => {
  const data = new TextEncoder().encode("hello outputs");
  const sha = digest(data);
  const up = store.begin(data.byteLength, sha);
  up.write(0, data.subarray(0, 5));
  up.write(5, data.subarray(5));
  const verified = up.finish();
  expect(verified).toMatchObject({ sha256: sha, size: data.byteLength });
  expect(store.has(sha)).toBe(false);
  expect(store.promote(verified)).toBe(true);
  expect(readFileSync(join(dir, "outputs", sha.slice(0, 2), sha), "utf8")).toBe("hello outputs");
  store.put(data, sha);
  expect(store.sizeOf(sha)).toBe(data.byteLength);
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
  refuse(() => store.put(data, digest(new Uint8Array([9]))), "invalid_argument");
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

test("a large verified output waits in a temp file: discard removes it, promote renames it into place", () => {
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
  expect(store.has(sha)).toBe(false);
  expect(store.promote(upload())).toBe(true);
  expect(store.promote(upload())).toBe(false);
  expect(tmpFiles()).toEqual([]);
  expect([...store.storedDigests()]).toEqual([sha]);
  expect(readFileSync(store.pathOf(sha)).equals(Buffer.from(data))).toBe(true);
});
