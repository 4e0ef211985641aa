import { create } from "@bufbuild/protobuf";
import { ModelEngine, ModelCliDefaultsSchema, type Model } from "../../../gen/studio/v1/model_pb.js";
import { TaskSchema, type Task } from "../../../gen/studio/v1/job_pb.js";
import { SAMPLING_METHODS } from "../../../contract/names.js";
import { taskIssues } from "../../../contract/task.js";
import type { View } from "../app.js";
import { field, h, replace, setFieldError } from "../dom.js";
import { describeError, isUnauthenticated } from "../errors.js";
import { guarded } from "../guarded.js";

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

const OVERRIDES = [
  { key: "steps", label: "Steps", step: "1" },
  { key: "cfgScale", label: "CFG scale", step: "any" },
  { key: "width", label: "Width", step: "8" },
  { key: "height", label: "Height", step: "8" },
] as const;

const num = (c: Control) => (c.value.trim() === "" ? undefined : Number(c.value));

/**
 * Creates a job: pick a model, write the prompt; for image engines the overrides
 * start at the model's cli defaults and only values that differ are sent, so a
 * later change of a default still reaches jobs that did not override it.
 */
export const jobCreateView: View = (app, main, route) => {
  let models: Model[] = [];
  const controls = new Map<string, { control: Control; error: HTMLElement }>();
  const taskBox = h("div");
  const serverError = h("p", { class: "server-error", role: "alert" });
  const modelSel = field("Model", h("select", { name: "model", required: true }));
  const priority = field(
    "Priority",
    h("input", { type: "number", name: "priority", step: 1, value: "0" }),
    "Higher runs first.",
  );
  const maxAttempts = field(
    "Max attempts",
    h("input", { type: "number", name: "maxAttempts", min: 0, max: 100, step: 1, value: "0" }),
    "0: the studio's default.",
  );
  const reg = (path: string, f: ReturnType<typeof field>) => {
    controls.set(path, { control: f.control, error: f.error });
    return f.row;
  };

  const kindSel = field(
    "Kind",
    h("select", { name: "kind" }, h("option", { value: "image" }, "image"), h("option", { value: "text" }, "text")),
    "The synthetic engine answers both kinds.",
  );
  const current = () => models.find((m) => m.name === modelSel.control.value);
  const engine = () => current()?.source?.engine;
  const isText = () =>
    engine() === ModelEngine.LLAMA_CPP || (engine() === ModelEngine.SYNTHETIC && kindSel.control.value === "text");

  const renderTask = () => {
    for (const k of [...controls.keys()]) if (k.startsWith("task.")) controls.delete(k);
    const m = current();
    if (!m)
      return replace(
        taskBox,
        h(
          "p",
          { class: "muted" },
          models.length ? "Pick a model." : "No enabled models: add one on the Models page first.",
        ),
      );
    const kindRow = engine() === ModelEngine.SYNTHETIC ? kindSel.row : null;
    if (isText()) {
      return replace(
        taskBox,
        kindRow,
        reg("task.text.prompt", field("Prompt", h("textarea", { name: "prompt", rows: 4 }))),
        reg(
          "task.text.max_tokens",
          field("Max tokens", h("input", { type: "number", name: "maxTokens", min: 1, step: 1 })),
        ),
        reg(
          "task.text.temperature",
          field("Temperature", h("input", { type: "number", name: "temperature", min: 0, max: 5, step: "any" })),
        ),
        reg(
          "task.text.seed",
          field("Seed", h("input", { type: "number", name: "seed", min: 0, step: 1 }), "Empty: the studio picks one."),
        ),
      );
    }
    const d = m.source?.cliDefaults;
    replace(
      taskBox,
      kindRow,
      reg("task.image.prompt", field("Prompt", h("textarea", { name: "prompt", rows: 3 }))),
      reg("task.image.negative_prompt", field("Negative prompt", h("textarea", { name: "negativePrompt", rows: 2 }))),
      h(
        "div",
        { class: "grid" },
        reg(
          "task.image.seed",
          field("Seed", h("input", { type: "number", name: "seed", min: 0, step: 1 }), "Empty: the studio picks one."),
        ),
        reg(
          "task.image.batch_count",
          field(
            "Batch count",
            h("input", { type: "number", name: "batchCount", min: 1, max: 16, step: 1, value: "1" }),
          ),
        ),
      ),
      h(
        "fieldset",
        { class: "grid" },
        h("legend", {}, "Overrides (start at the model's defaults)"),
        OVERRIDES.map((o) => {
          const v = d?.[o.key];
          return reg(
            `task.image.overrides.${o.key}`,
            field(
              o.label,
              h("input", {
                type: "number",
                name: o.key,
                step: o.step,
                min: 0,
                value: v === undefined ? "" : String(v),
                "data-default": v === undefined ? "" : String(v),
              }),
            ),
          );
        }),
        reg(
          "task.image.overrides.samplingMethod",
          field(
            "Sampling method",
            h(
              "select",
              { name: "samplingMethod", "data-default": d?.samplingMethod ?? "" },
              h("option", { value: "" }, "(model default)"),
              SAMPLING_METHODS.map((s) => h("option", { value: s, selected: s === d?.samplingMethod }, s)),
            ),
          ),
        ),
      ),
    );
  };

  const control = (path: string) => controls.get(path)!.control;

  const buildTask = (): Task => {
    if (isText()) {
      const seed = num(control("task.text.seed"));
      return create(TaskSchema, {
        kind: {
          case: "text",
          value: {
            prompt: control("task.text.prompt").value,
            maxTokens: num(control("task.text.max_tokens")),
            temperature: num(control("task.text.temperature")),
            seed: seed === undefined ? undefined : BigInt(Math.trunc(seed)),
          },
        },
      });
    }
    const overrides = create(ModelCliDefaultsSchema, {});
    for (const o of OVERRIDES) {
      const c = control(`task.image.overrides.${o.key}`);
      if (c.value !== c.dataset.default && c.value.trim() !== "") overrides[o.key] = Number(c.value);
    }
    const sm = control("task.image.overrides.samplingMethod");
    if (sm.value !== "" && sm.value !== sm.dataset.default) overrides.samplingMethod = sm.value;
    const seed = num(control("task.image.seed"));
    return create(TaskSchema, {
      kind: {
        case: "image",
        value: {
          prompt: control("task.image.prompt").value,
          negativePrompt: control("task.image.negative_prompt").value,
          seed: seed === undefined ? undefined : BigInt(Math.trunc(seed)),
          batchCount: num(control("task.image.batch_count")) ?? 0,
          overrides,
        },
      },
    });
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    serverError.textContent = "";
    const m = current();
    setFieldError(modelSel.control, modelSel.error, m ? undefined : "Pick a model.");
    if (!m) return;
    const task = buildTask();
    const issues = taskIssues(task);
    for (const { control: c, error } of controls.values()) setFieldError(c, error, undefined);
    for (const issue of issues) {
      const target = controls.get(issue.path) ?? controls.get(issue.path.replace(/\.[^.]+$/, ""));
      if (target) setFieldError(target.control, target.error, issue.message);
      else serverError.textContent = `${issue.path}: ${issue.message}`;
    }
    if (issues.length > 0) {
      app.announce(`Not created: ${issues.length} problem${issues.length === 1 ? "" : "s"} to fix.`, "error");
      taskBox.querySelector<HTMLElement>("[aria-invalid=true]")?.focus();
      return;
    }
    try {
      const res = await app.api.jobs.createJob({
        model: m.name,
        task,
        priority: num(priority.control) ?? 0,
        maxAttempts: num(maxAttempts.control) ?? 0,
      });
      app.navigate(`#/jobs/${encodeURIComponent(res.job!.id)}`);
      app.announce(`Job ${res.job!.id} queued.`);
    } catch (err) {
      if (isUnauthenticated(err)) return app.needLogin(err);
      serverError.textContent = `The studio refused: ${describeError(err)}`;
      app.announce("Creating the job failed.", "error");
    }
  };

  modelSel.control.addEventListener("change", renderTask);
  kindSel.control.addEventListener("change", renderTask);
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "New job"), h("a", { href: "#/jobs" }, "Back to jobs")),
    h(
      "form",
      { class: "card job-create", novalidate: true, onsubmit: submit, "aria-label": "New job" },
      modelSel.row,
      taskBox,
      h("div", { class: "grid" }, priority.row, maxAttempts.row),
      serverError,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create job")),
    ),
  );
  void guarded(app, "Listing models", () => app.api.registry.listModels({ enabledOnly: true })).then((res) => {
    models = res?.models ?? [];
    const wanted = route.query.get("model");
    replace(
      modelSel.control,
      models.map((m) => h("option", { value: m.name, selected: m.name === wanted }, m.name)),
    );
    renderTask();
  });
};
