import fs from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { ModelFile } from "../../gen/studio/v1/model_pb.js";
import type { CacheKey, CacheLayout, UrlBlobMeta } from "./cache-layout.js";
import type { FinishedDownload } from "./file-download.js";
import { fetchFollowing } from "./http-fetch.js";
import type { ResolvedOptions } from "./options.js";

/** A complete file in the cache (not yet pinned). */
export interface CacheEntry {
  path: string;
  sha256: string | undefined;
  sizeBytes: number;
  verified: boolean;
}

const UrlBlobMetaSchema = z.object({
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  sha256: z.string(),
  sizeBytes: z.number().int().nonnegative(),
});

/**
 * Finds a complete file. A digest-keyed blob is trusted as is (it was verified
 * before it was published). A URL-keyed (unverified) blob is revalidated with a
 * conditional GET on its ETag / Last-Modified: 304 keeps it, 200 means the file
 * changed and it is downloaded again; when the server cannot be reached the
 * cached copy is used, with a warning.
 */
export async function lookupBlob(layout: CacheLayout, key: CacheKey, file: ModelFile, opts: ResolvedOptions, signal: AbortSignal): Promise<CacheEntry | undefined> {
  const blob = layout.blob(key);
  let size: number;
  try {
    size = (await fs.stat(blob)).size;
  } catch {
    return undefined;
  }
  if (key.kind === "sha256") return { path: blob, sha256: key.name, sizeBytes: size, verified: true };
  let meta: UrlBlobMeta;
  try {
    const parsed = UrlBlobMetaSchema.safeParse(JSON.parse(await fs.readFile(layout.blobMeta(key), "utf8")));
    if (!parsed.success || parsed.data.url !== file.url || parsed.data.sizeBytes !== size) return undefined;
    meta = parsed.data;
  } catch {
    return undefined;
  }
  const entry = { path: blob, sha256: meta.sha256, sizeBytes: size, verified: false };
  const headers: Record<string, string> = {};
  if (meta.etag) headers["if-none-match"] = meta.etag;
  else if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
  else return entry;
  try {
    const policy = { hfToken: opts.hfToken, isTokenHost: opts.isTokenHost, maxRedirects: opts.maxRedirects };
    const { response } = await fetchFollowing(file.url, headers, policy, signal, (s) => s === 304 || (s >= 200 && s <= 299));
    await response.body?.cancel().catch(() => {});
    if (response.status === 304) return entry;
    const etag = response.headers.get("etag") ?? undefined;
    if (meta.etag && etag === meta.etag) return entry;
    opts.logger.info({ url: file.url, filename: file.filename }, "unverified cached file changed on the server; downloading again");
    return undefined;
  } catch (err) {
    signal.throwIfAborted();
    opts.logger.warn({ url: file.url, filename: file.filename, err: String(err) }, "cannot revalidate an unverified cached file; using the cached copy");
    return entry;
  }
}

/**
 * URLs of the complete unverified (URL-keyed) blobs: those whose meta sidecar names a URL and
 * matches the blob's size. A blob without readable meta is skipped (lookupBlob would not use it).
 */
export async function listUrlBlobs(layout: CacheLayout): Promise<string[]> {
  const dir = path.dirname(layout.blob({ id: "", kind: "url", name: "x" }));
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  const urls: string[] = [];
  for (const name of names) {
    const key = layout.keyOfBlob("url", name);
    if (!key) continue;
    try {
      const [stat, raw] = await Promise.all([fs.stat(layout.blob(key)), fs.readFile(layout.blobMeta(key), "utf8")]);
      const meta = UrlBlobMetaSchema.safeParse(JSON.parse(raw));
      if (meta.success && meta.data.sizeBytes === stat.size) urls.push(meta.data.url);
    } catch {
      // Evicted or half-published meanwhile: not a complete file.
    }
  }
  return urls.sort();
}

/** Moves a finished partial into the cache (meta first, then the blob: the blob's presence means complete). */
export async function publishBlob(layout: CacheLayout, key: CacheKey, file: ModelFile, done: FinishedDownload): Promise<CacheEntry> {
  const blob = layout.blob(key);
  if (key.kind === "url") {
    const meta: UrlBlobMeta = { url: file.url, sha256: done.sha256, sizeBytes: done.sizeBytes };
    if (done.etag) meta.etag = done.etag;
    if (done.lastModified) meta.lastModified = done.lastModified;
    const tmp = `${layout.blobMeta(key)}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(meta));
    await fs.rename(tmp, layout.blobMeta(key));
  }
  await fs.rename(layout.partial(key), blob);
  await fs.rm(layout.partialState(key), { force: true });
  return { path: blob, sha256: done.sha256, sizeBytes: done.sizeBytes, verified: key.kind === "sha256" };
}
