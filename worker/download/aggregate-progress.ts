import type { ModelFile } from "../../gen/studio/v1/model_pb.js";
import { ProgressMeter, type DownloadProgress } from "./progress.js";

/**
 * Sums per-file progress into one event stream for ensureAll: bytes done and
 * rate add up; the total is known only when every file's total is; verified
 * only when every file is. Throttled like a single file's progress.
 */
export function aggregateProgress(files: ModelFile[], intervalMs: number, emit: ((p: DownloadProgress) => void) | undefined) {
  const latest: Array<DownloadProgress | undefined> = files.map(() => undefined);
  const first = files[0];
  const meter = new ProgressMeter(intervalMs, emit, {
    filename: first?.filename ?? "",
    url: first?.url ?? "",
    bytesTotal: undefined,
    verified: files.every((f) => f.sha256 !== undefined),
  });
  const totals = () => {
    let bytesTotal: number | undefined = 0;
    for (let i = 0; i < files.length; i++) {
      const t = latest[i]?.bytesTotal ?? (files[i]!.approxBytes !== undefined ? Number(files[i]!.approxBytes) : undefined);
      bytesTotal = t === undefined || bytesTotal === undefined ? undefined : bytesTotal + t;
    }
    return bytesTotal;
  };
  return {
    update(index: number, p: DownloadProgress): void {
      latest[index] = p;
      const bytesDone = latest.reduce((s, q) => s + (q?.bytesDone ?? 0), 0);
      meter.update(bytesDone, { bytesTotal: totals(), verified: latest.every((q) => q?.verified ?? true) && files.every((f) => f.sha256 !== undefined) }, false);
    },
    finish(done: Array<{ sizeBytes: number; verified: boolean }>): void {
      const bytes = done.reduce((s, c) => s + c.sizeBytes, 0);
      meter.update(bytes, { bytesTotal: bytes, verified: done.every((c) => c.verified) }, true);
    },
  };
}
