/** Attributes and event handlers for `h`; `on*` keys take listeners, the rest are attributes or properties. */
export type Props = Record<string, unknown>;
export type Child = Node | string | number | null | undefined | false | Child[];

const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "hidden", "open", "textContent"]);

/**
 * Makes an element: `h("button", { type: "button", onclick }, "Save")`.
 * Text is always inserted as text nodes, so server data can never become markup.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (PROPERTIES.has(key)) {
      (el as unknown as Record<string, unknown>)[key] = value;
    } else if (key === "class") {
      el.className = String(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children, flattening arrays and skipping empty values. */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

let ids = 0;
/** A fresh id for label/for and aria-describedby pairs. */
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field: label, control, and an error slot tied to it with aria-describedby. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): { row: HTMLDivElement; control: typeof control; error: HTMLElement } {
  control.id ||= uid("f");
  const error = h("p", { class: "field-error", id: `${control.id}-error`, "aria-live": "polite" });
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl?.id, error.id].filter(Boolean).join(" "));
  const row = h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl, error);
  return { row, control, error };
}

/** Shows (or clears) an error beside a field and marks the control invalid for assistive tech. */
export function setFieldError(control: Element, error: HTMLElement, message: string | undefined): void {
  error.textContent = message ?? "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}
