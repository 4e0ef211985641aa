import { OutputError } from "./output-error.js";

const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;

/**
 * Refuses a mime type that is not a bare `type/subtype` token: it is served back
 * as Content-Type, so parameters, spaces and line breaks are not accepted.
 */
export function checkMimeType(mimeType: string): void {
  if (!MIME.test(mimeType))
    throw new OutputError("invalid_argument", `mime_type must be a type/subtype token such as image/png (got ${JSON.stringify(mimeType.slice(0, 80))})`);
}

/**
 * Refuses an output whose media type is not one its task kind allows (outputMimeTypes in
 * contract/task.ts): image/png, image/jpeg or image/webp for images, application/json for text.
 */
export function checkOutputMimeType(mimeType: string, allowed: ReadonlySet<string>, index: number): void {
  if (!allowed.has(mimeType))
    throw new OutputError(
      "invalid_argument",
      `output ${index}: mime_type ${JSON.stringify(mimeType.slice(0, 80))} is not allowed for this task; use one of ${[...allowed].join(", ") || "(none)"}`,
    );
}
