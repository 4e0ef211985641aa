import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { identityTag, parseIdentityTag, processStartTime, selfIdentity, type ProcessIdentity } from "../process-identity.js";

/** The file in each job dir that names the worker owning it and the engine process groups it started. */
export const OWNER_FILE = "owner.json";
/**
 * Job dirs are `job-*` under --work-dir; `.job-<creator>-*` while their owner record is being written.
 * The staging name carries its creator's identity (see identityTag), so a worker killed between the
 * mkdtemp and the rename leaves a dir that recovery can attribute even without a readable record.
 */
export const JOB_DIR_PREFIX = "job-";
export const NEW_JOB_DIR_PREFIX = ".job-";
/** Warm llama-servers outlive jobs, so each has its own record: `llama-<pgid>.json` under --work-dir. */
export const LLAMA_RECORD = /^llama-(\d+)\.json$/;
/** A record being written (writeRecordSync): `<record>.<writer's identityTag>.tmp`. */
export const RECORD_TMP = /\.(\d+(?:\.\d+)?)\.tmp$/;
const STAGING_NAME = /^\.job-(\d+(?:\.\d+)?)-[A-Za-z0-9]+$/;

const tick = z.string().regex(/^\d+$/).max(24);
const pid = z.number().int().positive().max(2 ** 31);

/** A process identified for the life of the host: its pid and its start time (/proc/<pid>/stat field 22). */
const identitySchema = z.strictObject({ pid, startTime: tick.optional() });

const groupSchema = z.strictObject({ pgid: pid, startTime: tick.optional(), binary: z.string().max(4096) });

/** owner.json and llama-<pgid>.json: stored JSON another worker (maybe another version) reads back. */
export const ownerRecordSchema = z.strictObject({
  version: z.literal(1),
  worker: identitySchema,
  groups: z.array(groupSchema).max(1024),
});
export type OwnerRecord = z.output<typeof ownerRecordSchema>;
export type RecordedGroup = OwnerRecord["groups"][number];

/** The worker that was creating the staging dir `name` (`.job-<identityTag>-XXXXXX`); undefined for any other name. */
export function stagingCreator(name: string): ProcessIdentity | undefined {
  const m = STAGING_NAME.exec(name);
  return m ? parseIdentityTag(m[1]!) : undefined;
}

/** The worker that was writing the record temp file `name` (`<record>.<identityTag>.tmp`); undefined for any other name. */
export function recordTmpWriter(name: string): ProcessIdentity | undefined {
  const m = RECORD_TMP.exec(name);
  return m ? parseIdentityTag(m[1]!) : undefined;
}

/**
 * Writes a record whole or not at all (temp file, then rename), synchronously so a kill -9 right after a
 * spawn still finds it. The temp file names its writer, so recovery can remove one a killed writer left.
 */
export function writeRecordSync(path: string, record: OwnerRecord): void {
  const tmp = `${path}.${identityTag(selfIdentity())}.tmp`;
  writeFileSync(tmp, JSON.stringify(record));
  renameSync(tmp, path);
}

/** The record at `path`; undefined when it is missing or not a valid record. */
export async function readRecord(path: string): Promise<OwnerRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = ownerRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One job's work dir and its owner record. The dir only appears under its `job-*` name once the
 * record is in it, so recovery never sees a job dir without an owner.
 */
export class JobDirRecord {
  private constructor(
    readonly dir: string,
    private readonly record: OwnerRecord,
  ) {}

  /** Creates `<workRoot>/job-XXXXXX` holding an owner.json that names this worker. */
  static async create(workRoot: string): Promise<JobDirRecord> {
    await mkdir(workRoot, { recursive: true });
    const record: OwnerRecord = { version: 1, worker: selfIdentity(), groups: [] };
    const staging = await mkdtemp(join(workRoot, `${NEW_JOB_DIR_PREFIX}${identityTag(record.worker)}-`));
    try {
      writeRecordSync(join(staging, OWNER_FILE), record);
      const dir = join(workRoot, JOB_DIR_PREFIX + basename(staging).slice(NEW_JOB_DIR_PREFIX.length));
      await rename(staging, dir);
      return new JobDirRecord(dir, record);
    } catch (err) {
      await rm(staging, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
  }

  /** Records an engine process group started for this job (call it as soon as the pid is known). */
  addGroup(pgid: number, binary: string): void {
    this.record.groups.push(groupEntry(pgid, binary));
    writeRecordSync(join(this.dir, OWNER_FILE), this.record);
  }
}

/** Records the warm llama-servers of this worker under --work-dir, one file per process group. */
export class WarmServerRecords {
  constructor(private readonly workRoot: string) {}

  /** Writes `llama-<pgid>.json` naming this worker and the server's group. */
  spawned(pgid: number, binary: string): void {
    mkdirSync(this.workRoot, { recursive: true });
    writeRecordSync(this.path(pgid), { version: 1, worker: selfIdentity(), groups: [groupEntry(pgid, binary)] });
  }

  /**
   * Removes the record once the server's group is gone. Synchronous on purpose: it runs from the
   * server's exit handler, and on a clean stop the worker exits right after its engines close, so
   * an asynchronous unlink could be cut off and leave the record behind.
   */
  reaped(pgid: number): void {
    rmSync(this.path(pgid), { force: true });
  }

  private path(pgid: number): string {
    return join(this.workRoot, `llama-${pgid}.json`);
  }
}

function groupEntry(pgid: number, binary: string): RecordedGroup {
  const startTime = processStartTime(pgid);
  return startTime === undefined ? { pgid, binary } : { pgid, startTime, binary };
}
