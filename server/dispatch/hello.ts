import { Code, ConnectError } from "@connectrpc/connect";
import { isSha256Hex } from "../../contract/hex.js";
import { urlProblem } from "../../contract/model-source.js";
import { engineName, type EngineName } from "../../contract/names.js";
import { GpuVendor, type CacheUpdate, type GpuDevice, type WorkerHello } from "../../gen/studio/v1/worker_service_pb.js";
import { MAX_LEASES_PER_CALL } from "./queue-store.js";
import { MAX_CACHED_DIGESTS, MAX_CACHED_URLS } from "./worker-registry.js";

/** Most concurrent jobs a worker may claim to run. */
export const MAX_SLOTS = 64;
const MAX_LABELS = 32;

/** A hello that passed every check, normalised. */
export interface CheckedHello {
  name: string;
  version: string;
  engines: Set<EngineName>;
  slots: number;
  cachedSha256: string[];
  cachedUrls: string[];
  labels: Record<string, string>;
  leaseIds: string[];
  /** The worker's GPUs (empty: CPU only). */
  gpus: GpuDevice[];
  /** For kept leases: the GPU each runs on. */
  leaseGpus: Record<string, number>;
}

/** Most GPUs one worker may report, and the highest index. */
export const MAX_GPUS = 64;
const MAX_GPU_INDEX = 1023;

/**
 * Checks a worker's GPUs (hello.gpus, gpu_update.gpus) or throws INVALID_ARGUMENT naming the field:
 * at most MAX_GPUS, unique indexes, a known vendor, bounded strings, memory figures that add up, 1 to
 * 64 slots each. `field` prefixes the messages ("hello: gpus").
 */
export function checkGpus(gpus: readonly GpuDevice[], field: string): void {
  const fail = (message: string) => new ConnectError(`${field}${message}`, Code.InvalidArgument);
  if (gpus.length > MAX_GPUS) throw fail(` may list at most ${MAX_GPUS} GPUs (got ${gpus.length})`);
  const seen = new Set<number>();
  for (const g of gpus) {
    const at = `[index ${g.index}]`;
    if (g.index > MAX_GPU_INDEX) throw fail(`${at}: index must be at most ${MAX_GPU_INDEX}`);
    if (seen.has(g.index)) throw fail(`: GPU index ${g.index} is listed twice`);
    seen.add(g.index);
    if (g.vendor !== GpuVendor.NVIDIA && g.vendor !== GpuVendor.AMD) throw fail(`${at}: vendor must be GPU_VENDOR_NVIDIA or GPU_VENDOR_AMD (got ${g.vendor})`);
    if (g.uuid.length > 128) throw fail(`${at}: uuid must be at most 128 characters`);
    if (g.name.length > 256) throw fail(`${at}: name must be at most 256 characters`);
    if (g.totalMemoryBytes === 0n || g.totalMemoryBytes > BigInt(Number.MAX_SAFE_INTEGER))
      throw fail(`${at}: total_memory_bytes must be from 1 to 2^53-1 (got ${g.totalMemoryBytes})`);
    if (g.freeMemoryBytes > g.totalMemoryBytes) throw fail(`${at}: free_memory_bytes (${g.freeMemoryBytes}) is more than total_memory_bytes (${g.totalMemoryBytes})`);
    if (g.workerMemoryBytes > g.totalMemoryBytes - g.freeMemoryBytes)
      throw fail(`${at}: worker_memory_bytes (${g.workerMemoryBytes}) is more than the memory in use (${g.totalMemoryBytes - g.freeMemoryBytes})`);
    if (g.slots < 1 || g.slots > MAX_SLOTS) throw fail(`${at}: slots must be from 1 to ${MAX_SLOTS} (got ${g.slots})`);
  }
}

const bad = (message: string) => new ConnectError(`hello: ${message}`, Code.InvalidArgument);

/**
 * Checks cached-file URLs a worker reports (hello.cached_urls, cache_update.added_urls): at most
 * MAX_CACHED_URLS, each an http(s) URL within the source URL limits, or INVALID_ARGUMENT naming the field.
 */
export function checkCachedUrls(urls: readonly string[], field: string): void {
  if (urls.length > MAX_CACHED_URLS) throw new ConnectError(`${field} may list at most ${MAX_CACHED_URLS} URLs (got ${urls.length})`, Code.InvalidArgument);
  for (const url of urls) {
    const why = urlProblem(url);
    if (why) throw new ConnectError(`${field}: a URL ${why} (got ${JSON.stringify(url.slice(0, 80))})`, Code.InvalidArgument);
  }
}

/**
 * Checks a worker's cache_update as hello's cached lists are checked, before anything is applied:
 * added digests are lower-case sha256 hex, added URLs http(s) within the source limits, and no list
 * is longer than what the studio keeps per worker. INVALID_ARGUMENT names the field (the session ends).
 */
export function checkCacheUpdate(update: CacheUpdate): void {
  const lists = [
    ["added_sha256", update.addedSha256, MAX_CACHED_DIGESTS],
    ["removed_sha256", update.removedSha256, MAX_CACHED_DIGESTS],
    ["removed_urls", update.removedUrls, MAX_CACHED_URLS],
  ] as const;
  for (const [field, list, max] of lists)
    if (list.length > max) throw new ConnectError(`cache_update: ${field} may list at most ${max} entries (got ${list.length})`, Code.InvalidArgument);
  const bads = update.addedSha256.find((s) => !isSha256Hex(s));
  if (bads !== undefined)
    throw new ConnectError(`cache_update: added_sha256 must hold lower-case sha256 hex digests (got ${JSON.stringify(bads.slice(0, 80))})`, Code.InvalidArgument);
  checkCachedUrls(update.addedUrls, "cache_update: added_urls");
}

/** Checks a worker's hello (names, bounded counts, known engines) or throws INVALID_ARGUMENT naming the field. */
export function checkHello(hello: WorkerHello): CheckedHello {
  const name = hello.name.trim();
  if (name === "" || name.length > 128) throw bad(`name must be 1 to 128 characters (got ${JSON.stringify(hello.name.slice(0, 140))})`);
  if (hello.version.length > 64) throw bad(`version must be at most 64 characters`);
  if (hello.engines.length === 0) throw bad("engines must list at least one engine the worker can run");
  const engines = new Set<EngineName>();
  for (const e of hello.engines) {
    const n = engineName(e);
    if (!n) throw bad(`engines holds an unknown engine (${e})`);
    engines.add(n);
  }
  const slots = hello.slots === 0 ? 1 : hello.slots;
  if (slots > MAX_SLOTS) throw bad(`slots must be at most ${MAX_SLOTS} (got ${hello.slots})`);
  if (hello.cachedSha256.length > MAX_CACHED_DIGESTS)
    throw bad(`cached_sha256 may list at most ${MAX_CACHED_DIGESTS} digests (got ${hello.cachedSha256.length})`);
  const bads = hello.cachedSha256.find((s) => !isSha256Hex(s));
  if (bads !== undefined) throw bad(`cached_sha256 must hold lower-case sha256 hex digests (got ${JSON.stringify(bads.slice(0, 80))})`);
  checkCachedUrls(hello.cachedUrls, "hello: cached_urls");
  const labelEntries = Object.entries(hello.labels);
  if (labelEntries.length > MAX_LABELS) throw bad(`labels may hold at most ${MAX_LABELS} entries`);
  for (const [k, v] of labelEntries)
    if (k.length > 64 || v.length > 256) throw bad(`label ${JSON.stringify(k.slice(0, 64))} is too long (keys 64, values 256 characters)`);
  if (hello.leaseIds.length > MAX_LEASES_PER_CALL)
    throw bad(`lease_ids may list at most ${MAX_LEASES_PER_CALL} leases (got ${hello.leaseIds.length})`);
  checkGpus(hello.gpus, "hello: gpus");
  if (hello.gpus.length > 0) {
    const gpuSlots = hello.gpus.reduce((n, g) => n + g.slots, 0);
    if (gpuSlots !== slots) throw bad(`gpus hold ${gpuSlots} slots in all, but slots is ${slots}: every slot runs on one of the GPUs`);
  }
  const leased = new Set(hello.leaseIds);
  for (const [leaseId, index] of Object.entries(hello.leaseGpus)) {
    if (!leased.has(leaseId)) throw bad(`lease_gpus names lease ${JSON.stringify(leaseId.slice(0, 80))}, which lease_ids does not list`);
    if (!hello.gpus.some((g) => g.index === index)) throw bad(`lease_gpus puts lease ${JSON.stringify(leaseId.slice(0, 80))} on GPU ${index}, which gpus does not list`);
  }
  return {
    name,
    version: hello.version,
    engines,
    slots,
    cachedSha256: hello.cachedSha256,
    cachedUrls: hello.cachedUrls,
    labels: { ...hello.labels },
    leaseIds: hello.leaseIds,
    gpus: hello.gpus,
    leaseGpus: { ...hello.leaseGpus },
  };
}
