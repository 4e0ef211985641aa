import type { View } from "../app.js";
import { h, replace } from "../dom.js";
import { saveJson } from "../download.js";
import { guarded } from "../guarded.js";
import { modelToDoc } from "../../../contract/model-doc.js";

/**
 * A model as a client token sees it: read only (GetModel), with its wire JSON and an export. The
 * registry is an admin's to change, so this page offers no edits; it says so instead of failing.
 */
export const modelReadView: View = (app, main, route) => {
  const name = route.path[1]!;
  if (name === "new") {
    replace(
      main,
      h("h1", {}, "New model"),
      h("p", { class: "notice" }, "Only an admin token can add models. Ask an admin, or sign in with an admin token."),
      h("p", {}, h("a", { href: "#/models" }, "Back to models")),
    );
    return;
  }
  replace(main, h("h1", {}, name), h("p", { class: "muted" }, "Loading…"));
  void guarded(app, `Reading ${name}`, () => app.api.registry.getModel({ name })).then((res) => {
    const model = res?.model;
    if (!model) return;
    const doc = modelToDoc(model);
    replace(
      main,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, model.name),
        h(
          "div",
          { class: "toolbar" },
          h("button", { type: "button", onclick: () => saveJson(doc, `${model.name}.model.json`) }, "Export"),
        ),
      ),
      model.description ? h("p", {}, model.description) : null,
      h("p", { class: "muted" }, "Read only: changing the registry needs an admin token."),
      h("pre", { class: "code", "aria-label": "Model JSON" }, JSON.stringify(doc, null, 2)),
      h("p", {}, h("a", { href: "#/models" }, "Back to models")),
    );
  });
};
