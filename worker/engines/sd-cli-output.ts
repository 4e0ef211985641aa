/** One sampling-bar update: `  |=====>   | 2/8 - 1.23s/it`, rate converted to steps per second. */
export interface SdBarUpdate {
  step: number;
  steps: number;
  rate?: number;
}

/** One log line: `[INFO ] stable-diffusion.cpp:5679 - generating image: 1/2 - seed 42`. */
export interface SdLogLine {
  /** DEBUG, INFO, WARN or ERROR; "" when another thread's output took the line's tag. */
  level: string;
  location: string;
  message: string;
}

const BAR = /\|\s*(\d+)\/(\d+)\s*-\s*([0-9]+(?:\.[0-9]+)?)(s\/it|it\/s)/;
/** The weight-loading bar: `  |#####     | 5/52 - 158.20MB/s` (tensors loaded, not steps). */
const LOAD_BAR = /\|[#\s]*\|\s*(\d+)\/(\d+)\s*-\s*[0-9.]+\s*[KMG]?B\/s/;
/**
 * sd-cli writes a line's tag and its text with two calls, from several threads at once, and stderr is
 * unbuffered: two loader threads failing together print `[ERROR] [ERROR] file:1 - a` and then
 * `file:1 - a`. So repeated tags are one tag (the last), and a line without a tag is still a log line.
 */
const LOG = /^(?:\[(DEBUG|INFO|WARN|ERROR)\s*\]\s*)*?(?:\[(DEBUG|INFO|WARN|ERROR)\s*\]\s+)?(\S+?\.\w+:\d+)\s+-\s?(.*)$/;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** One redraw of the bar sd-cli draws while it loads tensors: how many of how many. */
export interface SdLoadBar {
  done: number;
  total: number;
}

/** Reads one segment of sd-cli output (a line or a bar redraw) as a sampling bar, a loading bar, a log line, or plain text. */
export function parseSdSegment(segment: string): { bar: SdBarUpdate } | { load: SdLoadBar } | { log: SdLogLine } | { text: string } | undefined {
  const clean = segment.replace(ANSI, "").trimEnd();
  if (clean.trim() === "") return undefined;
  const load = LOAD_BAR.exec(clean);
  if (load) return { load: { done: Number(load[1]), total: Number(load[2]) } };
  const bar = BAR.exec(clean);
  if (bar) {
    const value = Number(bar[3]);
    const rate = value === 0 ? undefined : bar[4] === "it/s" ? value : 1 / value;
    return { bar: { step: Number(bar[1]), steps: Number(bar[2]), rate } };
  }
  const log = LOG.exec(clean);
  if (log) return { log: { level: log[2] ?? log[1] ?? "", location: log[3]!, message: log[4]! } };
  return { text: clean };
}

/**
 * Most characters of an unfinished segment kept while waiting for its end. Real segments are a
 * few hundred characters; a child that prints without newlines or carriage returns would otherwise
 * grow the buffer without limit. Past this, only the tail is kept (where a bar redraw would be).
 */
export const SD_MAX_PENDING_CHARS = 64 * 1024;

/**
 * Splits sd-cli's stdout into segments as it arrives. The sampling bar is redrawn with a carriage
 * return and ends in an erase-line escape (`\x1b[K`), without a newline until the last step, so a
 * trailing segment that ends in that escape is complete and is emitted at once. An unfinished
 * segment is bounded by SD_MAX_PENDING_CHARS (its head is dropped).
 */
export class SdOutputSplitter {
  private buffer = "";
  constructor(private readonly onSegment: (segment: string) => void) {}

  push(text: string): void {
    this.buffer += text;
    const parts = this.buffer.split(/\r\n|\n|\r/);
    this.buffer = parts.pop() ?? "";
    if (this.buffer.endsWith("\x1b[K")) {
      parts.push(this.buffer);
      this.buffer = "";
    } else if (this.buffer.length > SD_MAX_PENDING_CHARS) {
      this.buffer = this.buffer.slice(-SD_MAX_PENDING_CHARS);
    }
    for (const part of parts) this.onSegment(part);
  }

  /** Emits what is left when the stream ends. */
  end(): void {
    if (this.buffer !== "") this.onSegment(this.buffer);
    this.buffer = "";
  }
}
