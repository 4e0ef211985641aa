import { z } from "zod";
import { JobError } from "./job-errors.js";

/** Where a ListJobs page ends: the (createdAt, id) of its last job, in newest-first order. */
export interface ListCursor {
  createdAt: number;
  id: string;
}

const CursorSchema = z.strictObject({
  v: z.literal(1),
  c: z.number().int().nonnegative(),
  i: z.string().min(1).max(128),
});

/** The opaque page token for a cursor (base64url JSON; clients must not rely on its shape). */
export function encodeCursor(cursor: ListCursor): string {
  return Buffer.from(JSON.stringify({ v: 1, c: cursor.createdAt, i: cursor.id })).toString("base64url");
}

/** The cursor of a page token; JobError("invalid_request") naming page_token when it is not one we issued. */
export function decodeCursor(token: string): ListCursor {
  const bad = () => new JobError("invalid_request", "page_token: is not a token this server issued");
  if (token.length > 512 || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const parsed = CursorSchema.safeParse(raw);
  if (!parsed.success) throw bad();
  return { createdAt: parsed.data.c, id: parsed.data.i };
}
