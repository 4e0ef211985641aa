import { ENGINE_NAMES, ROLE_NAMES, SAMPLING_METHODS } from "../../../contract/names.js";
import { modelSourceFromJson } from "../../../contract/model-source.js";
import type { ValidationIssue } from "../../../contract/issues.js";
import type { View } from "../app.js";
import { field, h, replace, setFieldError, type Child } from "../dom.js";
import { checkModelDoc, modelToDoc } from "../../../contract/model-doc.js";
import { describeError, isUnauthenticated } from "../errors.js";
import { guarded } from "../guarded.js";
import { verifyReport } from "./models.js";

/** `source.files[0].filename` → `source.files[0]` → `source.files` → `source` → "". */
function parentPath(path: string): string {
  const m = /^(.*?)(\.[^.[\]]+|\[\d+\])$/.exec(path);
  return m ? m[1]! : "";
}

type Json = Record<string, unknown>;
type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

const CLI_FIELDS = [
  { key: "steps", label: "Steps", step: "1" },
  { key: "cfgScale", label: "CFG scale", step: "any" },
  { key: "width", label: "Width", step: "8" },
  { key: "height", label: "Height", step: "8" },
] as const;

function blankDoc(): Json {
  return { name: "", description: "", enabled: true, source: { engine: "sd-cpp", files: [], cliDefaults: {} } };
}

function select(options: readonly string[], value: unknown, allowEmpty = false): HTMLSelectElement {
  return h(
    "select",
    {},
    allowEmpty ? h("option", { value: "" }, "(engine default)") : null,
    options.map((o) => h("option", { value: o, selected: o === value }, o)),
  );
}

/**
 * Create or edit one model with a form and a JSON editor that stay in step.
 * Both are checked on every change by the registry's own rules (contract/), and
 * each problem is shown beside the field it names; the server's answer is shown too.
 */
export const modelEditView: View = (app, main, route) => {
  const name = route.path[1]!;
  const isNew = name === "new";
  let doc: Json = blankDoc();
  let original: Json | undefined;
  const controls = new Map<string, { control: Control | HTMLElement; error: HTMLElement }>();
  const formBox = h("div", { class: "model-form" });
  const json = field(
    "Model JSON",
    h("textarea", { rows: 18, spellcheck: false, class: "code", name: "json" }),
    "The import/export document: name, description, enabled and the source wire JSON. Edits here update the form.",
  );
  const summary = h("div", { class: "summary", "aria-live": "polite" });
  const serverError = h("p", { class: "server-error", role: "alert" });
  const verifyBox = h("div", { class: "verify", "aria-live": "polite" });
  /** While the form is drawn, a source that is not an object (an unreadable stored one) is read, never replaced. */
  let drawing = false;
  const source = () =>
    doc.source && typeof doc.source === "object" && !Array.isArray(doc.source)
      ? (doc.source as Json)
      : drawing
        ? ({} as Json)
        : ((doc.source = {}) as Json);
  const files = () => (Array.isArray(source().files) ? (source().files as Json[]) : ((source().files = []) as Json[]));
  const cli = () => {
    const s = source();
    return s.cliDefaults && typeof s.cliDefaults === "object"
      ? (s.cliDefaults as Json)
      : ((s.cliDefaults = {}) as Json);
  };

  const bind = (
    path: string,
    label: string,
    control: Control,
    read: () => unknown,
    write: (v: string | boolean) => void,
    hint?: string,
  ) => {
    const f = field(label, control, hint);
    const v = read();
    if (control instanceof HTMLInputElement && control.type === "checkbox") control.checked = v === true;
    else if (!(control instanceof HTMLSelectElement)) control.value = v === undefined || v === null ? "" : String(v);
    control.addEventListener("input", () => {
      write(control instanceof HTMLInputElement && control.type === "checkbox" ? control.checked : control.value);
      changed(false);
    });
    controls.set(path, { control, error: f.error });
    return f.row;
  };
  const numberOr = (v: string | boolean) => (v === "" ? undefined : Number.isNaN(Number(v)) ? v : Number(v));
  const setOrDelete = (obj: Json, key: string, v: unknown) => {
    if (v === undefined || v === "") delete obj[key];
    else obj[key] = v;
  };

  const renderForm = () => {
    drawing = true;
    try {
      drawForm();
    } finally {
      drawing = false;
    }
  };

  const drawForm = () => {
    controls.clear();
    const filesError = h("p", { class: "field-error", id: "files-error", "aria-live": "polite" });
    const filesBox = h("fieldset", { class: "files", "aria-describedby": "files-error" }, h("legend", {}, "Files"));
    controls.set("source.files", { control: filesBox, error: filesError });
    files().forEach((file, i) => {
      const p = `source.files[${i}]`;
      filesBox.append(
        h(
          "div",
          { class: "file-row", "data-file": i },
          h("h3", { class: "span" }, `File ${i + 1}`),
          bind(
            `${p}.role`,
            "Role",
            select(ROLE_NAMES, file.role),
            () => file.role,
            (v) => (file.role = v),
          ),
          bind(
            `${p}.url`,
            "URL",
            h("input", { type: "url", inputmode: "url" }),
            () => file.url,
            (v) => (file.url = v),
          ),
          bind(
            `${p}.filename`,
            "File name",
            h("input", { type: "text", spellcheck: false }),
            () => file.filename,
            (v) => (file.filename = v),
          ),
          bind(
            `${p}.approxBytes`,
            "Approx. bytes",
            h("input", { type: "number", min: 0, step: 1 }),
            () => file.approxBytes,
            (v) => setOrDelete(file, "approxBytes", numberOr(v)),
          ),
          bind(
            `${p}.sha256`,
            "sha256",
            h("input", { type: "text", spellcheck: false, class: "code" }),
            () => file.sha256,
            (v) => setOrDelete(file, "sha256", v),
          ),
          ...(file.role === "lora"
            ? [
                bind(
                  `${p}.loraWeight`,
                  "LoRA weight",
                  h("input", { type: "number", min: -10, max: 10, step: 0.05, placeholder: "1" }),
                  () => file.loraWeight,
                  (v) => setOrDelete(file, "loraWeight", numberOr(v)),
                ),
              ]
            : []),
          h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Remove file ${i + 1}`,
              onclick: () => {
                files().splice(i, 1);
                changed(true);
              },
            },
            "Remove file",
          ),
        ),
      );
    });
    filesBox.append(
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            files().push({ role: "model", url: "", filename: "" });
            changed(true);
          },
        },
        "Add file",
      ),
      filesError,
    );
    const nameInput = h("input", { type: "text", name: "name", required: true, readonly: !isNew, spellcheck: false });
    replace(
      formBox,
      bind(
        "name",
        "Name",
        nameInput,
        () => doc.name,
        (v) => (doc.name = v),
        isNew ? "What clients put on jobs." : "A model's name cannot change; create another and delete this one.",
      ),
      bind(
        "description",
        "Description",
        h("input", { type: "text" }),
        () => doc.description,
        (v) => (doc.description = v),
      ),
      bind(
        "enabled",
        "Enabled",
        h("input", { type: "checkbox" }),
        () => doc.enabled !== false,
        (v) => (doc.enabled = v),
      ),
      bind(
        "source.engine",
        "Engine",
        select(ENGINE_NAMES, source().engine),
        () => source().engine,
        (v) => (source().engine = v),
      ),
      filesBox,
      h(
        "fieldset",
        { class: "cli grid" },
        h("legend", {}, "Engine defaults"),
        CLI_FIELDS.map((c) =>
          bind(
            `source.cliDefaults.${c.key}`,
            c.label,
            h("input", { type: "number", step: c.step, min: 0 }),
            () => cli()[c.key],
            (v) => setOrDelete(cli(), c.key, numberOr(v)),
          ),
        ),
        bind(
          "source.cliDefaults.samplingMethod",
          "Sampling method",
          select(SAMPLING_METHODS, cli().samplingMethod, true),
          () => cli().samplingMethod,
          (v) => setOrDelete(cli(), "samplingMethod", v),
        ),
      ),
    );
  };

  /** Shows each issue beside its field (or the nearest enclosing one); returns how many there are. */
  const showIssues = (issues: ValidationIssue[]) => {
    for (const { control, error } of controls.values()) setFieldError(control, error, undefined);
    const loose: Child[] = [];
    const byField = new Map<string, string[]>();
    for (const issue of issues) {
      let path = issue.path;
      while (path && !controls.has(path)) path = parentPath(path);
      if (path)
        byField.set(path, [
          ...(byField.get(path) ?? []),
          issue.path === path ? issue.message : `${issue.path}: ${issue.message}`,
        ]);
      else loose.push(h("li", {}, `${issue.path}: ${issue.message}`));
    }
    for (const [path, messages] of byField) {
      const c = controls.get(path)!;
      setFieldError(c.control, c.error, messages.join("; "));
    }
    replace(
      summary,
      issues.length === 0
        ? null
        : h(
            "p",
            { class: "error-text" },
            `${issues.length} problem${issues.length === 1 ? "" : "s"} to fix before saving.`,
          ),
      loose.length ? h("ul", {}, loose) : null,
    );
    return issues.length;
  };

  const validate = () => {
    const checked = checkModelDoc(doc);
    return checked.ok ? { ok: true as const, doc: checked.doc } : { ok: false as const, issues: checked.issues };
  };

  /** After a form edit: rewrite the JSON; after a structural edit: re-render the form too. */
  const changed = (structural: boolean) => {
    if (structural) renderForm();
    json.control.value = JSON.stringify(doc, null, 2);
    setFieldError(json.control, json.error, undefined);
    const v = validate();
    showIssues(v.ok ? [] : v.issues);
  };

  json.control.addEventListener("input", () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json.control.value);
    } catch (err) {
      setFieldError(json.control, json.error, `Not valid JSON: ${(err as Error).message}`);
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      setFieldError(json.control, json.error, 'Must be one JSON object: {"name", "description", "enabled", "source"}.');
      return;
    }
    setFieldError(json.control, json.error, undefined);
    doc = parsed as Json;
    if (!isNew) doc.name = name;
    renderForm();
    const v = validate();
    showIssues(v.ok ? [] : v.issues);
  });

  const save = async (e: Event) => {
    e.preventDefault();
    serverError.textContent = "";
    const v = validate();
    if (!v.ok) {
      showIssues(v.issues);
      app.announce(`Not saved: ${v.issues.length} problem${v.issues.length === 1 ? "" : "s"} to fix.`, "error");
      formBox.querySelector<HTMLElement>("[aria-invalid=true]")?.focus();
      return;
    }
    const d = v.doc;
    const sourceMsg = modelSourceFromJson(d.source);
    const what = isNew ? `Creating ${d.name}` : `Saving ${d.name}`;
    try {
      if (isNew) {
        await app.api.registry.createModel({
          name: d.name,
          description: d.description,
          enabled: d.enabled,
          source: sourceMsg,
        });
      } else {
        await app.api.registry.updateModel({ name: d.name, description: d.description, source: sourceMsg });
        if (original && original.enabled !== d.enabled)
          await app.api.registry.setModelEnabled({ name: d.name, enabled: d.enabled });
      }
    } catch (err) {
      if (isUnauthenticated(err)) return app.needLogin(err);
      serverError.textContent = `The studio refused: ${describeError(err)}`;
      app.announce(`${what} failed.`, "error");
      return;
    }
    app.navigate("#/models");
    app.announce(`${d.name} saved.`);
  };

  const verify = async () => {
    const v = validate();
    if (!v.ok) {
      showIssues(v.issues);
      replace(verifyBox, h("p", { class: "error-text" }, "Fix the problems above before verifying."));
      return;
    }
    replace(verifyBox, h("p", { class: "muted" }, "Verifying…"));
    const res = await guarded(app, "Verifying", () =>
      app.api.registry.verifyModel({ target: { case: "source", value: modelSourceFromJson(v.doc.source) } }),
    );
    replace(verifyBox, res ? verifyReport(res) : null);
  };

  const render = (unreadable?: { text: string; error: string }) => {
    renderForm();
    json.control.value = JSON.stringify(doc, null, 2);
    replace(
      main,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, isNew ? "New model" : `Edit ${name}`),
        h("a", { href: "#/models" }, "Back to models"),
      ),
      unreadable
        ? h(
            "div",
            { class: "unreadable-source", role: "alert" },
            h("p", { class: "error-text" }, `The stored source of ${name} cannot be read: ${unreadable.error}`),
            h("p", {}, "This is the stored text. It is in the JSON editor as it is: fix it there (or in the form) and save."),
            h("pre", { class: "code" }, unreadable.text),
          )
        : null,
      h(
        "form",
        { class: "model-edit", novalidate: true, onsubmit: save, "aria-label": isNew ? "New model" : `Edit ${name}` },
        h(
          "div",
          { class: "columns" },
          h("section", { "aria-label": "Form" }, formBox),
          h("section", { "aria-label": "JSON editor" }, json.row),
        ),
        summary,
        serverError,
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", class: "primary" }, isNew ? "Create model" : "Save model"),
          h("button", { type: "button", onclick: verify }, "Verify files"),
          h("a", { class: "button", href: "#/models" }, "Cancel"),
        ),
        verifyBox,
      ),
    );
  };

  if (isNew) render();
  else
    void guarded(app, `Loading ${name}`, () => app.api.registry.getModel({ name })).then((res) => {
      if (!res?.model)
        return replace(
          main,
          h("h1", {}, `Edit ${name}`),
          h("p", { class: "error-text" }, "This model could not be loaded; see the status line."),
          h("a", { href: "#/models" }, "Back to models"),
        );
      doc = modelToDoc(res.model);
      original = { ...doc };
      if (res.model.source) return render();
      render({ text: res.model.unreadableSourceText, error: res.model.unreadableSourceError });
      const v = validate();
      showIssues(v.ok ? [] : v.issues);
    });
};
