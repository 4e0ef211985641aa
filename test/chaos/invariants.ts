import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromJsonString } from "@bufbuild/protobuf";
import { effectiveCliSettings, expectedOutputCount, parseModelSourceJson } from "../../contract/index.js";
import { TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { SYNTHETIC_DEFAULTS, syntheticImage, syntheticText } from "../../worker/engines/synthetic.js";
import { textOutput } from "../../worker/engines/text-output.js";
import { fakeSdImage } from "../fixtures/fake-image.js";

/** One output as a job row stores it (protobuf JSON of JobOutput). */
export interface StoredOutput {
  index?: number;
  mimeType?: string;
  sizeBytes?: string;
  sha256?: string;
}

/** What the invariant check found: every broken rule, and counts for the figures. */
export interface InvariantReport {
  violations: string[];
  jobs: number;
  byStatus: Record<string, number>;
  outputsChecked: number;
  /** Attempts beyond the first, summed over jobs (each one a retry or a re-run after a lost lease). */
  extraAttempts: number;
  storeFiles: number;
  /**
   * Files in the store no job refers to: outputs a job uploaded before it was cancelled or failed
   * (the store keeps uploads as they complete, before JobComplete). Each must be an output one of
   * those jobs would have made, or it is a violation.
   */
  orphanFiles: string[];
}

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** The bytes the engine of `source` produces for output `index` of `task`. */
export function expectedBytes(source: ModelSource, task: Task, index: number): Uint8Array {
  const kind = task.kind;
  if (kind.case === "text") return textOutput(syntheticText(kind.value)).data;
  if (kind.case !== "image") throw new Error("task sets neither image nor text");
  const s = effectiveCliSettings(source.cliDefaults, kind.value.overrides);
  if (source.engine === ModelEngine.SYNTHETIC)
    return syntheticImage(kind.value, { width: s.width ?? SYNTHETIC_DEFAULTS.width, height: s.height ?? SYNTHETIC_DEFAULTS.height }, index);
  if (source.engine === ModelEngine.SD_CPP)
    return fakeSdImage({ prompt: kind.value.prompt, seed: String(kind.value.seed ?? 42n), width: s.width ?? 512, height: s.height ?? 512, index });
  throw new Error(`no expected bytes for engine ${ModelEngine[source.engine]}`);
}

/** Every file under `dir`, recursively (relative paths). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk("");
  return out;
}

/** A job row as the invariants read it. */
export interface ChaosRow {
  id: string;
  model: string;
  status: string;
  task: string;
  modelSource: string | null;
  attempts: number;
  error: string;
  outputs: string;
  leaseId: string | null;
}

/**
 * What a stopped studio left, read the same way from either store: the job rows, the stored
 * outputs' bytes, and what the store's layout says on its own (temp files, stray entries).
 */
export interface StoreSnapshot {
  rows: ChaosRow[];
  /** Stored output bytes by digest. */
  stored: Map<string, Buffer>;
  /**
   * Digests stored but not yet claimed by a committed job (PostgreSQL's unverified blobs: a
   * complete that failed, or a replica killed between storing and committing). Swept after a
   * grace period, so they may be present; each must still be an output some job could make.
   */
  pending: Set<string>;
  layoutProblems: string[];
}

/** The SQLite file and the output files of a stopped studio's data dir. */
export function sqliteSnapshot(dataDir: string): StoreSnapshot {
  const db = new Database(join(dataDir, "studio.db"), { readonly: true });
  let rows: ChaosRow[];
  try {
    rows = db.query("SELECT id, model, status, task, modelSource, attempts, error, outputs, leaseId FROM graphicsJobs").all() as ChaosRow[];
  } finally {
    db.close();
  }
  const storeRoot = join(dataDir, "outputs");
  const files = filesUnder(storeRoot);
  const layoutProblems: string[] = [];
  for (const p of files.filter((f) => f.startsWith(".tmp/"))) layoutProblems.push(`temp file left in the output store: ${p}`);
  const stored = new Map<string, Buffer>();
  for (const p of files.filter((f) => !f.startsWith(".tmp/"))) {
    const [prefix, sha] = p.split("/");
    if (!sha || !/^[0-9a-f]{64}$/.test(sha) || sha.slice(0, 2) !== prefix) layoutProblems.push(`unexpected file in the output store: ${p}`);
    else stored.set(sha, readFileSync(join(storeRoot, p)));
  }
  return { rows, stored, pending: new Set(), layoutProblems };
}

/**
 * Checks what a stopped studio left (its snapshot: rows and stored outputs).
 * `seenAtSuccess` holds the outputs a client saw when each job first reported SUCCEEDED; they must
 * not have changed since. `failureReason` says which jobs may fail and what their error must say;
 * any other failed job is a violation.
 */
export function checkInvariants(
  snapshot: StoreSnapshot,
  seenAtSuccess: Map<string, StoredOutput[]>,
  failureReason: (model: string, task: Task) => RegExp | undefined = () => undefined,
): InvariantReport {
  const violations: string[] = [...snapshot.layoutProblems];
  const { rows, stored, pending } = snapshot;
  const byStatus: Record<string, number> = {};
  const referenced = new Set<string>();
  /** Digests a job that did not succeed could have uploaded before it was cancelled or failed. */
  const unreferencedButExplained = new Set<string>();
  let outputsChecked = 0;
  let extraAttempts = 0;
  for (const row of rows) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + 1;
    extraAttempts += Math.max(0, row.attempts - 1);
    const where = `job ${row.id}`;
    if (!TERMINAL.has(row.status)) {
      violations.push(`${where} is ${row.status}, not terminal`);
      continue;
    }
    const outputs = JSON.parse(row.outputs) as StoredOutput[];
    if (row.status === "FAILED") {
      const why = failureReason(row.model, fromJsonString(TaskSchema, row.task));
      if (!why) violations.push(`${where} (${row.model}) was not meant to fail but FAILED: ${JSON.stringify(row.error)}`);
      else if (!why.test(row.error)) violations.push(`${where} (${row.model}) FAILED without saying why: ${JSON.stringify(row.error)} does not match ${why}`);
    }
    if (row.status !== "SUCCEEDED") {
      if (outputs.length > 0) violations.push(`${where} is ${row.status} but has ${outputs.length} outputs`);
      for (const sha of possibleOutputs(row.task, row.modelSource)) unreferencedButExplained.add(sha);
      continue;
    }
    if (row.error !== "") violations.push(`${where} SUCCEEDED with an error ${JSON.stringify(row.error)}`);
    const task = fromJsonString(TaskSchema, row.task);
    const source = parseModelSourceJson(row.modelSource);
    if (!source) {
      violations.push(`${where} has no stored model source`);
      continue;
    }
    const want = expectedOutputCount(task);
    if (outputs.length !== want) violations.push(`${where} has ${outputs.length} outputs, its task asks for ${want}`);
    const indices = outputs.map((o) => o.index ?? 0).sort((a, b) => a - b);
    if (indices.join() !== [...Array(outputs.length).keys()].join()) violations.push(`${where} output indices ${indices.join()} are not 0..${outputs.length - 1} once each`);
    const seen = seenAtSuccess.get(row.id);
    if (seen && JSON.stringify(seen) !== JSON.stringify(outputs)) violations.push(`${where} outputs changed after success: ${JSON.stringify(seen)} then ${row.outputs}`);
    for (const o of outputs) {
      const sha = o.sha256 ?? "";
      referenced.add(sha);
      const bytes = stored.get(sha);
      if (!bytes) {
        violations.push(`${where} output ${o.index ?? 0}: ${sha} is missing from the output store`);
        continue;
      }
      // A committed output still marked pending would be taken by the store's sweep later.
      if (pending.has(sha)) violations.push(`${where} output ${o.index ?? 0}: ${sha} is stored but not marked as committed`);
      outputsChecked += 1;
      if (String(bytes.length) !== (o.sizeBytes ?? "0")) violations.push(`${where} output ${o.index ?? 0}: size ${bytes.length}, row says ${o.sizeBytes}`);
      const actual = createHash("sha256").update(bytes).digest("hex");
      if (actual !== sha) violations.push(`${where} output ${o.index ?? 0}: stored bytes hash to ${actual}, row says ${sha}`);
      const expected = expectedBytes(source, task, o.index ?? 0);
      if (!bytes.equals(Buffer.from(expected))) violations.push(`${where} output ${o.index ?? 0}: bytes differ from what the engine makes for this seed`);
    }
  }
  const orphanFiles = [...stored.keys()].filter((sha) => !referenced.has(sha));
  // Outputs enter the store only in their job's complete (a crash between storing and committing
  // leaves bytes the studio sweeps: at start-up on SQLite, after a grace period on PostgreSQL, where
  // they stay marked pending until then), so every other stored output is some job's output.
  for (const sha of orphanFiles) {
    if (pending.has(sha) && unreferencedButExplained.has(sha)) continue;
    violations.push(
      unreferencedButExplained.has(sha)
        ? `output store file ${sha} is referenced by no job (an upload kept for a job that did not complete)`
        : `output store file ${sha} is no output any job could have made`,
    );
  }
  return { violations, jobs: rows.length, byStatus, outputsChecked, extraAttempts, storeFiles: stored.size, orphanFiles };
}

/** The digests of every output a job's task could produce (empty when its engine makes no known bytes). */
function possibleOutputs(taskJson: string, sourceJson: string | null): string[] {
  try {
    const task = fromJsonString(TaskSchema, taskJson);
    const source = parseModelSourceJson(sourceJson);
    if (!source || task.kind.case === undefined) return [];
    return Array.from({ length: expectedOutputCount(task) }, (_, i) =>
      createHash("sha256").update(expectedBytes(source, task, i)).digest("hex"),
    );
  } catch {
    return [];
  }
}
