import cliProgress from "cli-progress";
import type { JobProgress } from "../../gen/studio/v1/job_pb.js";
import type { JobOutcome, JobView } from "../runtime/ports.js";
import { phaseName, progressMeasure, progressText } from "../../contract/job-progress.js";

/** The numbers and words a bar shows for one progress report (the contract's rule, as the web page and CLI show it). */
export function barState(p: JobProgress): { value: number; total: number; detail: string } {
  const m = progressMeasure(p);
  if (!m) return { value: 0, total: 1, detail: p.message };
  return { value: m.done, total: Math.max(m.total, m.done, 1), detail: progressText(m, p.rate) };
}

/**
 * Progress bars on a terminal (cli-progress's MultiBar: one line per job, redrawn in place,
 * with log lines printed above them through `log`).
 */
export class BarView implements JobView {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly multi: cliProgress.MultiBar;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.multi = new cliProgress.MultiBar(
      {
        stream,
        format: " {job} {phase} |{bar}| {percentage}% {detail}",
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
        autopadding: true,
        fps: 8,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  /** Prints a line above the bars (straight to the terminal while no bar is shown: nothing would redraw). */
  log(line: string): void {
    const text = line.endsWith("\n") ? line : `${line}\n`;
    if (this.bars.size === 0) this.stream.write(text);
    else this.multi.log(text);
  }

  started(jobId: string, model: string, engine: string): void {
    this.bars.set(jobId, this.multi.create(1, 0, { job: jobId.slice(0, 12), phase: "starting", detail: `${model} (${engine})` }));
  }

  progress(jobId: string, p: JobProgress): void {
    const bar = this.bars.get(jobId);
    if (!bar) return;
    const s = barState(p);
    bar.setTotal(s.total);
    bar.update(s.value, { phase: phaseName(p.phase).padEnd(11), detail: s.detail });
  }

  finished(jobId: string, outcome: JobOutcome, message?: string): void {
    const bar = this.bars.get(jobId);
    if (bar) this.multi.remove(bar);
    this.bars.delete(jobId);
    this.log(`job ${jobId} ${outcome}${message ? `: ${message}` : ""}`);
  }

  stop(): void {
    this.multi.update();
    this.multi.stop();
  }
}
