import type { z } from "zod";

/** One broken rule: the field's path (like `files[1].filename`) and what is wrong with it. */
export interface ValidationIssue {
  path: string;
  message: string;
}

/** A short, log-safe rendering of a bad value for an error message. */
export function describeValue(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Formats a path as `a.b[2].c`. */
export function formatPath(path: ReadonlyArray<PropertyKey>, prefix = ""): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(root)" : out;
}

/** Turns a zod error into issues that name the field and, where zod had it, the bad value. */
export function issuesFromZod(error: z.ZodError, prefix = ""): ValidationIssue[] {
  return error.issues.map((issue) => {
    const path = formatPath(issue.path, prefix);
    let message = issue.message;
    if (issue.code === "invalid_value" && "values" in issue) {
      message = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
      const got = "input" in issue ? issue.input : undefined;
      if (got !== undefined) message += ` (got ${describeValue(got)})`;
    } else if (issue.code === "unrecognized_keys") {
      message = `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    } else if ("input" in issue && isPrimitive(issue.input) && !message.includes("(got ")) {
      message += ` (got ${describeValue(issue.input)})`;
    }
    return { path, message };
  });
}

/** Joins issues into one message, as the RPC edge reports them. */
export function formatIssues(issues: ValidationIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join("; ");
}

function isPrimitive(value: unknown): boolean {
  return value === null || ["string", "number", "boolean", "bigint"].includes(typeof value);
}
