import type { Job, JobOutput } from "../../../gen/studio/v1/job_pb.js";
import { outputFileName } from "../../../contract/output-files.js";
import type { App } from "../app.js";
import { h, replace } from "../dom.js";
import { saveBlob } from "../download.js";
import { describeError } from "../errors.js";
import { formatBytes } from "../../../contract/byte-size.js";

/** The largest text output shown inline; bigger ones are offered as downloads only. */
const MAX_INLINE_TEXT = 256 * 1024;

/** Outputs inline: images as images, text as text; every output has a download link to GET /jobs/{id}/outputs/{index}. */
export function renderOutputs(app: App, job: Job, box: HTMLElement, objectUrls: string[]) {
  replace(box, h("h2", { id: "outputs-title" }, `Outputs (${job.outputs.length})`));
  const list = h("div", { class: "output-list" });
  box.append(list);
  for (const out of job.outputs) list.append(outputItem(app, job, out, objectUrls));
}

function outputItem(app: App, job: Job, out: JobOutput, objectUrls: string[]): HTMLElement {
  const path = `/jobs/${encodeURIComponent(job.id)}/outputs/${out.index}`;
  const filename = outputFileName(job.id, out.index, out.mimeType);
  const preview = h("div", { class: "preview" }, h("span", { class: "muted" }, "Loading…"));
  const link = h(
    "a",
    { href: path, download: filename },
    `Download output ${out.index} (${out.mimeType}, ${formatBytes(out.sizeBytes)})`,
  );
  // With a token the plain link would be refused, so the click fetches with the bearer header.
  link.addEventListener("click", (e) => {
    if (!app.api.session.token) return;
    e.preventDefault();
    app.api.fetchPath(path).then(
      async (res) => saveBlob(await res.blob(), filename),
      (err) => app.announce(`Downloading output ${out.index} failed: ${describeError(err)}`, "error"),
    );
  });
  const isImage = out.mimeType.startsWith("image/");
  const isText = out.mimeType.startsWith("text/") || out.mimeType === "application/json";
  if (!isImage && !isText) replace(preview);
  else if (isText && out.sizeBytes > BigInt(MAX_INLINE_TEXT))
    replace(preview, h("p", { class: "muted" }, "Too large to show here; download it."));
  else
    app.api.fetchPath(path).then(
      async (res) => {
        if (isImage) {
          const url = URL.createObjectURL(await res.blob());
          objectUrls.push(url);
          const img = h("img", { src: url, alt: `Output ${out.index} of job ${job.id}`, "data-output": out.index });
          img.addEventListener("error", () =>
            replace(
              preview,
              h(
                "p",
                { class: "error-text", role: "alert" },
                `Output ${out.index} (${out.mimeType}) is not an image this browser can decode; download it to inspect.`,
              ),
            ),
          );
          replace(preview, img);
        } else replace(preview, textPreview(out, await res.text()));
      },
      (err) =>
        replace(preview, h("p", { class: "error-text" }, `Could not load output ${out.index}: ${describeError(err)}`)),
    );
  return h(
    "figure",
    { class: "output" },
    preview,
    h("figcaption", {}, link, h("div", { class: "muted code" }, `sha256 ${out.sha256}`)),
  );
}

/** Text as text; a JSON output (a text engine's reply) shows its `text` field first and the whole document below. */
function textPreview(out: JobOutput, body: string): HTMLElement {
  if (out.mimeType !== "application/json") return h("pre", { class: "text-output", "data-output": out.index }, body);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return h("pre", { class: "text-output", "data-output": out.index }, body);
  }
  const text =
    doc && typeof doc === "object" && typeof (doc as { text?: unknown }).text === "string"
      ? (doc as { text: string }).text
      : undefined;
  return h(
    "div",
    {},
    text !== undefined ? h("pre", { class: "text-output", "data-output": out.index }, text) : null,
    h(
      "details",
      { open: text === undefined },
      h("summary", {}, "JSON"),
      h("pre", { class: "text-output code", "data-output-json": out.index }, JSON.stringify(doc, null, 2)),
    ),
  );
}
