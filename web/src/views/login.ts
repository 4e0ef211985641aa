import { TokenRole } from "../../../gen/studio/v1/token_service_pb.js";
import type { View } from "../app.js";
import { describeError, isUnauthenticated } from "../errors.js";
import { field, h, replace, setFieldError } from "../dom.js";

/**
 * Asks for a bearer token, checks it with WhoAmI (a worker token is refused here: the page is for
 * admins and clients) and keeps it in sessionStorage. A studio running open (loopback, no tokens) accepts any call,
 * so the page also works without signing in there.
 */
export const loginView: View = (app, main) => {
  const token = field(
    "Token",
    h("input", {
      type: "password",
      name: "token",
      autocomplete: "current-password",
      required: true,
      spellcheck: false,
    }),
    "An admin or client token, as created with `studio tokens create`. Kept in this tab only.",
  );
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card narrow",
      "aria-labelledby": "login-title",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const value = token.control.value.trim();
        if (!value) return setFieldError(token.control, token.error, "Enter a token.");
        submit.disabled = true;
        app.api.session.set(value);
        try {
          const me = await app.api.tokens.whoAmI({});
          if (me.role === TokenRole.WORKER) {
            app.api.session.clear();
            setFieldError(token.control, token.error, `"${me.tokenName}" is a worker token; this page needs an admin or client token.`);
            return;
          }
          app.identity = { role: me.role, tokenName: me.tokenName, open: me.open };
          setFieldError(token.control, token.error, undefined);
          app.loginReason = undefined;
          window.dispatchEvent(new Event("studio:session"));
          app.navigate(app.returnTo.startsWith("#/login") ? "#/jobs" : app.returnTo);
          app.announce(`Signed in as ${me.tokenName} (${me.role === TokenRole.ADMIN ? "admin" : "client"}).`);
        } catch (err) {
          app.api.session.clear();
          setFieldError(
            token.control,
            token.error,
            isUnauthenticated(err) ? `The studio refused this token (${describeError(err)}).` : describeError(err),
          );
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", { id: "login-title" }, "Sign in"),
    app.loginReason
      ? h(
          "div",
          { class: "notice", role: "alert" },
          h("p", {}, app.loginReason.message),
          app.loginReason.detail ? h("p", { class: "muted" }, `The studio said: ${app.loginReason.detail}`) : null,
        )
      : null,
    token.row,
    h("div", { class: "actions" }, submit),
  );
  replace(main, form);
  token.control.focus();
};
