import { TokenRole } from "../../gen/studio/v1/token_service_pb.js";
import type { Api } from "./api.js";
import { h, replace } from "./dom.js";
import { describeError, isUnauthenticated } from "./errors.js";

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

/** Who the page is signed in as, as WhoAmI told it. */
export interface Identity {
  role: TokenRole;
  tokenName: string;
  /** The studio runs open: no token needed, everyone is admin. */
  open: boolean;
}

/** Why the sign-in page is shown: a sentence for a person, and the studio's own words when it refused a token. */
export interface LoginReason {
  message: string;
  detail?: string;
}

/** What every view is given: the RPC clients, the status line, confirmation and navigation. */
export class App {
  private readonly dialog: HTMLDialogElement;
  /** Where to return after signing in, and why sign-in was asked for. */
  loginReason: LoginReason | undefined;
  returnTo = "#/jobs";
  /** Set once WhoAmI answered; views show what this role may do. */
  identity: Identity | undefined;

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

  /** Whether the signed-in role may change the registry (admin); false until WhoAmI answered. */
  get isAdmin(): boolean {
    return this.identity?.role === TokenRole.ADMIN;
  }

  /**
   * Asks the studio who this tab's token is (WhoAmI). Resolves to the identity, or undefined after
   * sending the operator to sign in (no token, a refused one, or a worker token); other failures
   * are announced and leave the identity unknown (admin actions stay hidden).
   */
  async loadIdentity(): Promise<Identity | undefined> {
    try {
      const me = await this.api.tokens.whoAmI({});
      if (me.role === TokenRole.WORKER) {
        this.identity = undefined;
        this.api.session.clear();
        this.needLogin(`"${me.tokenName}" is a worker token; this page needs an admin or client token.`);
        return undefined;
      }
      this.identity = { role: me.role, tokenName: me.tokenName, open: me.open };
      window.dispatchEvent(new Event("studio:session"));
      return this.identity;
    } catch (err) {
      this.identity = undefined;
      if (isUnauthenticated(err)) this.needLogin(err);
      else this.announce(`Asking the studio who this token is failed: ${describeError(err)}`, "error");
      return undefined;
    }
  }

  /**
   * Sends the operator to the login form, remembering where they were. Given the studio's refusal,
   * the form says in plain words what happened (no token yet, or this tab's token refused) and
   * keeps the studio's words as detail; given a sentence, it shows that.
   */
  needLogin(why: unknown): void {
    if (typeof why === "string") this.loginReason = { message: why };
    else if (this.api.session.token) {
      this.loginReason = {
        message: "The studio refused this tab's token (it may have been revoked). Sign in again.",
        detail: why === undefined ? undefined : describeError(why),
      };
    } else {
      this.loginReason = {
        message: "This studio needs a token. Sign in with an admin or client token; an admin creates one with `studio tokens create NAME --role client`.",
      };
    }
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
