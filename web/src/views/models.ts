import { vramText } from "../../../contract/gpus.js";
import type { Model } from "../../../gen/studio/v1/model_pb.js";
import type { VerifyModelResponse } from "../../../gen/studio/v1/registry_service_pb.js";
import { engineName, roleName } from "../../../contract/names.js";
import type { View } from "../app.js";
import { guarded } from "../guarded.js";
import { h, replace, uid } from "../dom.js";
import { saveJson } from "../download.js";
import { formatBytes } from "../../../contract/byte-size.js";
import { modelToDoc, parseModelDocs } from "../../../contract/model-doc.js";
import { formatIssues } from "../../../contract/issues.js";
import { modelSourceFromJson } from "../../../contract/model-source.js";


/** The registry as a table with enable/disable, verify, export and delete; import and export of the wire JSON. */
export const modelsView: View = (app, main) => {
  const tbody = h("tbody");
  const importInput = h("input", {
    type: "file",
    accept: "application/json,.json",
    id: uid("import"),
    class: "visually-hidden",
  });
  let models: Model[] = [];
  // The registry is an admin's to change: a client token sees it read only, with no buttons that would be refused.
  const admin = app.isAdmin;

  const load = async () => {
    const res = await guarded(app, "Listing models", () => app.api.registry.listModels({}));
    if (!res) return;
    models = res.models;
    renderRows();
  };

  const renderRows = () => {
    if (models.length === 0) {
      replace(
        tbody,
        h("tr", {}, h("td", { colspan: 5, class: "empty" }, admin ? "No models yet. Add one with New model or Import." : "No models yet.")),
      );
      return;
    }
    replace(tbody, models.map(row));
  };

  const row = (m: Model) => {
    const verifyCell = h("div", { class: "verify", "aria-live": "polite" });
    const files = m.source?.files ?? [];
    return [
      h(
        "tr",
        { "data-model": m.name },
        h(
          "th",
          { scope: "row", "data-label": "Name" },
          h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name),
          m.description ? h("div", { class: "muted" }, m.description) : null,
        ),
        h(
          "td",
          { "data-label": "Engine", class: "nowrap" },
          m.source ? (engineName(m.source.engine) ?? `unknown (${m.source.engine})`) : "—",
          m.vram ? h("div", { class: "muted", "data-vram": "" }, `GPU: ${vramText(m.vram)}`) : null,
        ),
        h(
          "td",
          { "data-label": "Files" },
          files.length === 0
            ? h("span", { class: "muted" }, "none")
            : h(
                "ul",
                { class: "plain" },
                files.map((f) =>
                  h(
                    "li",
                    {},
                    h("code", {}, f.filename),
                    h("div", { class: "muted" }, `${roleName(f.role) ?? "?"} · ${formatBytes(f.approxBytes, "—")}`),
                  ),
                ),
              ),
        ),
        h(
          "td",
          { "data-label": "Enabled" },
          h("span", { class: `badge ${m.enabled ? "ok" : "off"}` }, m.enabled ? "enabled" : "disabled"),
        ),
        h(
          "td",
          { "data-label": "Actions" },
          h(
            "div",
            { class: "row-actions" },
            admin
              ? [
                  h(
                    "a",
                    { class: "button", href: `#/models/${encodeURIComponent(m.name)}`, "aria-label": `Edit ${m.name}` },
                    "Edit",
                  ),
                  h(
                    "button",
                    {
                      type: "button",
                      "aria-label": `${m.enabled ? "Disable" : "Enable"} ${m.name}`,
                      onclick: () => toggle(m),
                    },
                    m.enabled ? "Disable" : "Enable",
                  ),
                  h(
                    "button",
                    { type: "button", "aria-label": `Verify ${m.name}`, onclick: () => verify(m, verifyCell) },
                    "Verify",
                  ),
                ]
              : h(
                  "a",
                  { class: "button", href: `#/models/${encodeURIComponent(m.name)}`, "aria-label": `View ${m.name}` },
                  "View",
                ),
            h(
              "button",
              {
                type: "button",
                "aria-label": `Export ${m.name}`,
                onclick: () => saveJson(modelToDoc(m), `${m.name}.model.json`),
              },
              "Export",
            ),
            admin
              ? h(
                  "button",
                  { type: "button", class: "danger", "aria-label": `Delete ${m.name}`, onclick: () => remove(m) },
                  "Delete",
                )
              : null,
          ),
          verifyCell,
        ),
      ),
    ];
  };

  const toggle = async (m: Model) => {
    const res = await guarded(app, `${m.enabled ? "Disabling" : "Enabling"} ${m.name}`, () =>
      app.api.registry.setModelEnabled({ name: m.name, enabled: !m.enabled }),
    );
    if (res?.model) {
      app.announce(`${m.name} ${res.model.enabled ? "enabled" : "disabled"}.`);
      await load();
    }
  };

  const remove = async (m: Model) => {
    const ok = await app.confirm(
      `Delete ${m.name}?`,
      "Jobs already written keep their resolved source; new jobs for this name will be refused.",
      `Delete ${m.name}`,
    );
    if (!ok) return;
    if (await guarded(app, `Deleting ${m.name}`, () => app.api.registry.deleteModel({ name: m.name }))) {
      app.announce(`${m.name} deleted.`);
      await load();
    }
  };

  const verify = async (m: Model, cell: HTMLElement) => {
    replace(cell, h("span", { class: "muted" }, "Verifying…"));
    const res = await guarded(app, `Verifying ${m.name}`, () =>
      app.api.registry.verifyModel({ target: { case: "name", value: m.name } }),
    );
    replace(cell, res ? verifyReport(res) : h("span", { class: "error-text" }, "Verify failed; see the status line."));
  };

  const importFile = async () => {
    const file = importInput.files?.[0];
    importInput.value = "";
    if (!file) return;
    const { docs, issues } = parseModelDocs(await file.text());
    if (issues.length > 0) {
      app.announce(`${file.name} was not imported: ${formatIssues(issues)}`, "error");
      return;
    }
    const results: string[] = [];
    for (const doc of docs) {
      const created = await guarded(app, `Importing ${doc.name}`, () =>
        app.api.registry.createModel({
          name: doc.name,
          description: doc.description,
          enabled: doc.enabled,
          source: modelSourceFromJson(doc.source),
        }),
      );
      if (!created) return load();
      results.push(doc.name);
    }
    app.announce(`Imported ${results.length} model${results.length === 1 ? "" : "s"}: ${results.join(", ")}.`);
    await load();
  };
  importInput.addEventListener("change", () => void importFile());

  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Models"),
      h(
        "div",
        { class: "toolbar" },
        admin ? h("a", { class: "button primary", href: "#/models/new" }, "New model") : null,
        admin ? importInput : null,
        admin ? h("label", { class: "button", for: importInput.id }, "Import JSON") : null,
        h(
          "button",
          { type: "button", onclick: () => saveJson(models.map(modelToDoc), "studio-models.json") },
          "Export all",
        ),
      ),
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive" },
        h("caption", { class: "visually-hidden" }, "Models in the registry"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Name", "Engine", "Files", "Enabled", "Actions"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        tbody,
      ),
    ),
  );
  void load();
};

/** Per-file reachability and size against approxBytes, as VerifyModel reported it. */
export function verifyReport(res: VerifyModelResponse): HTMLElement {
  if (res.files.length === 0) return h("p", { class: "muted" }, "No files to check.");
  return h(
    "div",
    {},
    h(
      "p",
      { class: res.ok ? "ok-text" : "error-text" },
      res.ok ? "Every file is reachable." : "Some files are not reachable.",
    ),
    h(
      "ul",
      { class: "plain checks" },
      res.files.map((f) =>
        h(
          "li",
          { class: f.reachable && f.sizeMatches ? "ok-text" : "error-text" },
          h("code", {}, f.filename),
          `: ${f.reachable ? "reachable" : "unreachable"} (HTTP ${f.httpStatus || "none"}), size ${formatBytes(f.sizeBytes, "—")}`,
          f.approxBytes !== undefined
            ? ` vs approx ${formatBytes(f.approxBytes)}${f.sizeMatches ? "" : " — mismatch"}`
            : "",
          f.error ? ` — ${f.error}` : "",
        ),
      ),
    ),
  );
}
