import fs from "node:fs/promises";
import path from "node:path";
import { filenameProblem } from "../../contract/index.js";
import { ModelFileRole, type ModelFile } from "../../gen/studio/v1/model_pb.js";
import { DownloadError } from "./errors.js";

/** A cached file as linkWorkDir needs it. */
export interface LinkableFile {
  path: string;
}

/** The links a job hands to its engine. */
export interface WorkDirLinks {
  files: Array<{ role: ModelFileRole; filename: string; path: string }>;
  /** workDir/loras when any file is a LORA (sd-cli's --lora-model-dir), else undefined. */
  loraDir: string | undefined;
}

/**
 * Creates workDir/models/<filename> (workDir/loras/<filename> for LORA files)
 * as symlinks to the cached blobs, so engines see each file under the name the
 * model source gives it. The filename was validated by the contract; it is
 * checked again here because it becomes a path: anything but a bare name is
 * refused before any link is made.
 */
export async function linkWorkDir(workDir: string, entries: Array<{ file: ModelFile; cached: LinkableFile }>): Promise<WorkDirLinks> {
  const seen = new Set<string>();
  for (const { file } of entries) {
    const problem = filenameProblem(file.filename);
    const dir = file.role === ModelFileRole.LORA ? "loras" : "models";
    const duplicate = seen.has(`${dir}/${file.filename}`);
    if (problem || duplicate)
      throw new DownloadError({
        kind: "invalid",
        retryable: false,
        url: file.url,
        filename: file.filename,
        message: `filename ${JSON.stringify(file.filename)} ${problem ?? "is used twice"}`,
      });
    seen.add(`${dir}/${file.filename}`);
  }
  const modelsDir = path.join(workDir, "models");
  const loraDir = path.join(workDir, "loras");
  const hasLora = entries.some(({ file }) => file.role === ModelFileRole.LORA);
  await fs.mkdir(modelsDir, { recursive: true });
  if (hasLora) await fs.mkdir(loraDir, { recursive: true });
  const files: WorkDirLinks["files"] = [];
  for (const { file, cached } of entries) {
    const link = path.join(file.role === ModelFileRole.LORA ? loraDir : modelsDir, file.filename);
    const tmp = `${link}.${process.pid}.link`;
    await fs.rm(tmp, { force: true });
    await fs.symlink(path.resolve(cached.path), tmp);
    await fs.rename(tmp, link);
    files.push({ role: file.role, filename: file.filename, path: link });
  }
  return { files, loraDir: hasLora ? loraDir : undefined };
}
