import { TransferFailure, diskFailure } from "./errors.js";
import type { DownloadLogger, OpenFile, WritableFile } from "./options.js";

/** Offsets, lengths and buffer addresses of direct writes are multiples of this (the largest logical block size in use). */
export const DIRECT_ALIGNMENT = 4096;

/**
 * The partial file of one download. Reads, truncates and syncs go through the
 * ordinary handle; block writes that are aligned go through a second handle
 * opened with O_DIRECT when the filesystem takes one. Measured for issue 21
 * (1 GiB from nginx on loopback, same run): writing through the page cache was
 * the largest and least steady part of our CPU per GiB (0.9-2.5 s of system
 * time here, against 0.05 s direct), and direct writes also leave no gigabytes
 * of dirty pages for the final fsync to wait on. Unaligned writes (a resume
 * point, the file's tail, a flush before a retry) take the ordinary handle; a
 * direct write the kernel refuses (EINVAL: an alignment this filesystem does
 * not take) turns direct writes off for this file and is written again the
 * ordinary way.
 */
export class PartialFile {
  private constructor(
    private readonly file: WritableFile,
    private direct: WritableFile | undefined,
    private readonly path: string,
    private readonly logger: DownloadLogger,
  ) {}

  /** Opens `path` ("r+" keeps its bytes, "w+" creates or empties it) and, unless `directIo` is off, a direct handle beside it. */
  static async open(openFile: OpenFile, path: string, flags: "r+" | "w+", options: { directIo: boolean; logger: DownloadLogger }): Promise<PartialFile> {
    const file = await openFile(path, flags);
    let direct: WritableFile | undefined;
    if (options.directIo) {
      try {
        direct = await openFile(path, "direct");
      } catch (err) {
        options.logger.info({ path, reason: (err as Error).message }, "direct I/O is not available for the partial file; writing through the page cache");
      }
    }
    return new PartialFile(file, direct, path, options.logger);
  }

  /** Whether aligned writes currently bypass the page cache. */
  get directWrites(): boolean {
    return this.direct !== undefined;
  }

  /** Writes all of `bytes` at `position`; a full disk is a permanent TransferFailure. */
  async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    const direct = this.direct;
    if (direct && isAligned(bytes, position)) {
      try {
        await writeFully(direct, bytes, position);
        return;
      } catch (err) {
        if (!refusedDirect(err)) throw err;
        this.direct = undefined;
        await direct.close().catch(() => {});
        this.logger.info({ path: this.path, reason: (err as Error).message }, "direct writes refused; writing through the page cache");
      }
    }
    await writeFully(this.file, bytes, position);
  }

  /** Reads for the hash's read-back: aligned reads go through the direct handle too, so they do not fill the page cache either. */
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const direct = this.direct;
    if (direct && isAligned(buffer.subarray(offset, offset + length), position)) {
      try {
        return await direct.read(buffer, offset, length, position);
      } catch (err) {
        if (!refusedDirect(err)) throw err;
        this.direct = undefined;
        await direct.close().catch(() => {});
        this.logger.info({ path: this.path, reason: (err as Error).message }, "direct reads refused; using the page cache");
      }
    }
    return this.file.read(buffer, offset, length, position);
  }

  truncate(length: number): Promise<void> {
    return this.file.truncate(length);
  }

  stat() {
    return this.file.stat();
  }

  /** Flushes both handles: direct writes skip the page cache but not the device's write cache or the file's metadata. */
  async datasync(): Promise<void> {
    await this.direct?.datasync();
    await this.file.datasync();
  }

  async close(): Promise<void> {
    await this.direct?.close().catch(() => {});
    await this.file.close();
  }
}

/** The default OpenFile's "direct" mode: read-write, O_DIRECT (Linux; elsewhere the flag is missing and the caller falls back). */
export function directFlags(constants: { O_RDWR: number; O_DIRECT?: number }): number {
  if (!constants.O_DIRECT) throw new Error("O_DIRECT is not supported on this platform");
  return constants.O_RDWR | constants.O_DIRECT;
}

function isAligned(bytes: Uint8Array, position: number): boolean {
  // Buffers are whole ArrayBuffers of at least a block, which the allocator hands out page-aligned; the byteOffset must keep that.
  return position % DIRECT_ALIGNMENT === 0 && bytes.byteLength % DIRECT_ALIGNMENT === 0 && bytes.byteOffset % DIRECT_ALIGNMENT === 0 && bytes.byteLength > 0;
}

function refusedDirect(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code ?? (err as { code?: unknown } | null)?.code;
  return code === "EINVAL" || code === "EOPNOTSUPP" || code === "ENOTSUP";
}

async function writeFully(file: WritableFile, chunk: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    let written: number;
    try {
      ({ bytesWritten: written } = await file.write(chunk, offset, chunk.byteLength - offset, position + offset));
    } catch (err) {
      throw new TransferFailure(
        diskFailure(err, `writing at byte ${position + offset}`) ?? { kind: "disk", retryable: false, message: `cannot write the partial file: ${(err as Error).message}`, cause: err },
      );
    }
    if (written <= 0) throw new TransferFailure({ kind: "disk", retryable: false, message: "write made no progress" });
    offset += written;
  }
}
