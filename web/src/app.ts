import type { Api } from "./api.js";
import { h, replace } from "./dom.js";

/** A view renders into `main` and returns what to undo when the route changes. */
export type View = (app: App, main: HTMLElement, route: Route) => void | (() => void);

/** The hash route: `#/jobs/abc?status=running` → path ["jobs", "abc"], query status=running. */
export interface Route {
  path: string[];
  query: URLSearchParams;
}

/** Parses `location.hash`. */
export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q)).split("/").filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

/** What every view is given: the RPC clients, the status line, confirmation and navigation. */
export class App {
  private readonly dialog: HTMLDialogElement;
  /** Where to return after signing in, and why sign-in was asked for. */
  loginReason: string | undefined;
  returnTo = "#/jobs";

  constructor(
    readonly api: Api,
    private readonly status: HTMLElement,
  ) {
    this.dialog = h("dialog", { class: "confirm", "aria-modal": "true" });
    document.body.append(this.dialog);
  }

  /** Says something in the aria-live status line; errors stay until the next message. */
  announce(message: string, kind: "info" | "error" = "info"): void {
    this.status.textContent = message;
    this.status.dataset.kind = kind;
  }

  navigate(hash: string): void {
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = hash;
  }

  /** Sends the operator to the login form, remembering where they were. */
  needLogin(reason: string): void {
    this.loginReason = reason;
    if (!location.hash.startsWith("#/login")) this.returnTo = location.hash || "#/jobs";
    this.navigate("#/login");
  }

  /** A modal confirmation with named buttons; resolves true only on the confirming button. */
  confirm(title: string, body: string, confirmLabel: string): Promise<boolean> {
    return new Promise((resolve) => {
      const titleId = "confirm-title";
      const done = (ok: boolean) => {
        this.dialog.close();
        resolve(ok);
      };
      replace(
        this.dialog,
        h("h2", { id: titleId }, title),
        h("p", {}, body),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", onclick: () => done(false) }, "Keep"),
          h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel),
        ),
      );
      this.dialog.setAttribute("aria-labelledby", titleId);
      this.dialog.onclose = () => resolve(false);
      this.dialog.showModal();
    });
  }
}
