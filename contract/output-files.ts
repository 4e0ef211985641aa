/**
 * The file name an output is saved under, wherever it is saved (the CLI's --output, the demo, the
 * web page's download link): `<job id>-<index>.<extension>`, the extension from the media type's
 * subtype (image/png → png, application/json → json), `bin` when it has none worth using. Job ids
 * are studio-made; the media type comes from a worker, so only letters and digits of it are kept.
 */
export function outputFileName(jobId: string, index: number, mimeType: string): string {
  const subtype = /^[^/]+\/([A-Za-z0-9]+)(?:[;+\s]|$)/.exec(mimeType)?.[1]?.toLowerCase();
  const ext = subtype && subtype !== "octet" && subtype.length <= 10 ? subtype : "bin";
  return `${jobId}-${index}.${ext}`;
}
