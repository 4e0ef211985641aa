import "./styles.css";
import { TokenRole } from "../../gen/studio/v1/token_service_pb.js";
import { createApi } from "./api.js";
import { App, parseRoute, type View } from "./app.js";
import { h, replace } from "./dom.js";
import { TokenSession } from "./session.js";
import { loginView } from "./views/login.js";
import { modelsView } from "./views/models.js";
import { modelEditView } from "./views/model-edit.js";
import { modelReadView } from "./views/model-read.js";
import { jobsView } from "./views/jobs.js";
import { jobCreateView } from "./views/job-create.js";
import { jobView } from "./views/job.js";
import { workersView } from "./views/workers.js";

/** Picks the view for a route; unknown routes say so instead of guessing. */
function pick(path: string[]): View {
  const [section, sub] = path;
  if (section === "login") return loginView;
  if (section === "models") return sub === undefined ? modelsView : (app, main, route) => (app.isAdmin ? modelEditView : modelReadView)(app, main, route);
  if (section === "jobs") return sub === undefined ? jobsView : sub === "new" ? jobCreateView : jobView;
  if (section === "workers") return workersView;
  return (_app, main) => {
    replace(main, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/jobs" }, "Go to jobs")));
  };
}

function start() {
  const session = new TokenSession();
  const api = createApi(session);
  const main = document.getElementById("main")!;
  const app = new App(api, document.getElementById("status")!);
  const sessionBox = document.getElementById("session")!;
  let cleanup: void | (() => void);
  let navigated = false;

  const renderSession = () => {
    const me = app.identity;
    const signOut = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          session.clear();
          app.identity = undefined;
          app.needLogin("Signed out.");
        },
      },
      "Sign out",
    );
    replace(
      sessionBox,
      session.token
        ? [me ? h("span", { class: "who" }, `${me.tokenName} (${me.role === TokenRole.ADMIN ? "admin" : "client"})`) : null, signOut]
        : h("a", { href: "#/login" }, "Sign in"),
    );
  };

  const render = () => {
    if (!location.hash || location.hash === "#" || location.hash === "#/") {
      location.replace("#/jobs");
      return;
    }
    cleanup?.();
    cleanup = undefined;
    const route = parseRoute(location.hash);
    for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
      const current = link.getAttribute("href") === `#/${route.path[0] ?? ""}`;
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (route.path[0] !== "login") app.announce("");
    renderSession();
    replace(main);
    // Screen readers and keyboards start at the new content; a view may move focus further (login does).
    if (navigated) main.focus({ preventScroll: true });
    navigated = true;
    cleanup = pick(route.path)(app, main, route);
  };

  window.addEventListener("hashchange", render);
  window.addEventListener("studio:session", renderSession);
  // Who this tab is first, so that views show only what the role may do and a studio that needs a
  // token opens on the sign-in page with a sentence, not with the error of whichever call came first.
  const before = location.hash;
  if (before.startsWith("#/login")) render();
  else
    void app.loadIdentity().then(() => {
      // needLogin changed the hash: its hashchange renders the sign-in page.
      if (location.hash === before) render();
    });
}

start();
