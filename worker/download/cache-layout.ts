import { createHash } from "node:crypto";
import path from "node:path";

/**
 * Where everything lives under the cache dir. A file with a sha256 is keyed by
 * its digest (two models sharing a text encoder share one blob); a file without
 * one is keyed by a hash of its URL and carries its ETag in a meta sidecar.
 *
 *   blobs/sha256/<hex>            complete, verified files
 *   blobs/url/<urlhash>           complete, unverified files (+ <urlhash>.json meta)
 *   partial/<key>.part            bytes being downloaded (+ <key>.json state sidecar)
 *   locks/<key>.lock              who is downloading or evicting a key
 *   pins/<key>.<identity>         which processes use a complete file (<pid>.<start time>)
 */
export class CacheLayout {
  constructor(readonly root: string) {}

  /** The cache key of a file: its digest when known, else a hash of its URL. */
  static keyFor(sha256: string | undefined, url: string): CacheKey {
    if (sha256) return { id: `sha256-${sha256}`, kind: "sha256", name: sha256 };
    const name = createHash("sha256").update(url).digest("hex");
    return { id: `url-${name}`, kind: "url", name };
  }

  dirs(): string[] {
    return ["blobs/sha256", "blobs/url", "partial", "locks", "pins"].map((d) => path.join(this.root, d));
  }

  blob(key: CacheKey): string {
    return path.join(this.root, "blobs", key.kind, key.name);
  }

  blobMeta(key: CacheKey): string {
    return `${this.blob(key)}.json`;
  }

  partial(key: CacheKey): string {
    return path.join(this.root, "partial", `${key.id}.part`);
  }

  partialState(key: CacheKey): string {
    return path.join(this.root, "partial", `${key.id}.json`);
  }

  lock(key: CacheKey): string {
    return path.join(this.root, "locks", `${key.id}.lock`);
  }

  pinsDir(): string {
    return path.join(this.root, "pins");
  }

  pin(key: CacheKey, holder: string): string {
    return path.join(this.pinsDir(), `${key.id}.${holder}`);
  }

  /** The key a blob path under blobs/ stands for, or undefined for meta and temp files. */
  keyOfBlob(kind: "sha256" | "url", name: string): CacheKey | undefined {
    if (!/^[0-9a-f]{64}$/.test(name)) return undefined;
    return { id: `${kind}-${name}`, kind, name };
  }
}

/** A cache key: `id` names partials, locks and pins; `kind`/`name` place the blob. */
export interface CacheKey {
  id: string;
  kind: "sha256" | "url";
  name: string;
}

/** Meta sidecar of an unverified (URL-keyed) blob: enough to revalidate it and report it. */
export interface UrlBlobMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  sha256: string;
  sizeBytes: number;
}
