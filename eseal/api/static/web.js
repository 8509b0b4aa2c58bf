// The portal's and console's one script of shared behaviour: JSON calls with the page's CSRF
// token, bilingual field-level errors, a confirmation dialog, the USB-Key login and the
// console's step-up. No page script is inline (the Content-Security-Policy forbids it).
"use strict";
const Web = {
  lang: document.documentElement.lang.startsWith("en") ? "en" : "zh",
  tr(zh, en) { return Web.lang === "en" ? en : zh; },
  csrf() { return document.querySelector('meta[name="csrf-token"]').content; },

  // A call to the JSON API on the page's cookie session. Resolves with the parsed JSON (or
  // the Response when raw); rejects with an Error carrying {status, code, message,
  // message_zh, field, details}.
  async api(method, path, body, options = {}) {
    const headers = { "X-CSRF-Token": Web.csrf() };
    let payload;
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      payload = body;
      headers["Content-Type"] = options.contentType || "application/pdf";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, { method, headers, body: payload,
                                         credentials: "same-origin" });
    if (response.ok) return options.raw ? response : response.json();
    const data = await response.json().catch(() => ({}));
    const error = new Error(data.message || `HTTP ${response.status}`);
    Object.assign(error, data, { status: response.status });
    if (!error.code) error.code = `HTTP_${response.status}`;
    throw error;
  },

  // "中文 / English" (or the other way round in English), with the code in front.
  text(error) {
    const zh = error.message_zh || "", en = error.message || "";
    let text = Web.lang === "en" ? `${en}${zh ? " / " + zh : ""}` : `${zh || en}${zh && en ? " / " + en : ""}`;
    const d = error.details || {};
    if (d.tries_left !== undefined) text += Web.tr(`（剩余 ${d.tries_left} 次）`, ` (${d.tries_left} tries left)`);
    return `${error.code || "ERROR"}: ${text}`;
  },

  clearErrors(scope = document) {
    scope.querySelectorAll(".field-error").forEach((p) => p.remove());
    scope.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    scope.querySelectorAll("[role=alert].error").forEach((el) => { el.hidden = true; el.textContent = ""; });
  },

  // Show an error where it belongs: next to the input its field names (in `scope`), else in
  // the scope's alert box (`.error[role=alert]`, or #error).
  showError(error, scope = document) {
    Web.clearErrors(scope);
    const field = error.field && scope.querySelector(`[name="${CSS.escape(error.field)}"]`);
    if (field) {
      const note = document.createElement("p");
      note.className = "field-error";
      note.id = `${field.id || field.name}-error`;
      note.dataset.code = error.code || "";
      note.dataset.field = error.field;
      note.textContent = Web.text(error);
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", note.id);
      field.insertAdjacentElement("afterend", note);
      field.focus();
      return;
    }
    const box = scope.querySelector(".error[role=alert]") || document.getElementById("error");
    if (!box) { alert(Web.text(error)); return; }
    box.hidden = false;
    box.dataset.code = error.code || "";
    box.dataset.field = error.field || "";
    box.textContent = Web.text(error);
    if (["EXTENSION_MISSING", "HOST_NOT_INSTALLED", "EXTENSION_ERROR"].includes(error.code)) {
      const help = document.getElementById("install-help");
      if (help) help.hidden = false;
    }
  },

  toast(text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.classList.add("shown");
    setTimeout(() => box.classList.remove("shown"), 4000);
  },

  // A confirmation that names what is about to happen; resolves true on Confirm.
  confirm(text) {
    const dialog = document.getElementById("confirm-dialog");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      const done = (answer) => {
        dialog.close();
        ok.removeEventListener("click", yes); cancel.removeEventListener("click", no);
        resolve(answer);
      };
      const ok = document.getElementById("confirm-ok"), cancel = document.getElementById("confirm-cancel");
      const yes = () => done(true), no = () => done(false);
      ok.addEventListener("click", yes); cancel.addEventListener("click", no);
      dialog.showModal();
    });
  },

  // Log in with the USB-Key: a challenge from the service, the extension signs it for the
  // origin the browser reports, the service sets the HttpOnly session cookie.
  async login({ stepUp = false, next = "" } = {}) {
    const challenge = await Web.api("POST", "/auth/challenge");
    const answer = await window.eseal.authenticate(challenge);
    const result = await Web.api("POST", "/web/login", { ...answer, step_up: stepUp, next: next || null });
    document.querySelector('meta[name="csrf-token"]').content = result.csrf_token;
    return result;
  },

  // Run `action`; when the service asks for a fresh USB-Key proof (STEP_UP_REQUIRED), say so,
  // re-authenticate with the same key and run it once more.
  async withStepUp(action) {
    try {
      return await action();
    } catch (error) {
      if (error.code !== "STEP_UP_REQUIRED") throw error;
      const again = await Web.confirm(Web.tr(
        "此操作需要在 5 分钟内重新验证 USB-Key。现在插入您的 USB-Key 并输入 PIN 重新验证？",
        "This action needs a USB-Key re-authentication within the last 5 minutes. Re-authenticate now with your USB-Key and PIN?"));
      if (!again) throw error;
      await Web.login({ stepUp: true });
      return action();
    }
  },
};

document.getElementById("logout")?.addEventListener("click", async () => {
  try {
    const result = await Web.api("POST", "/web/logout");
    location.assign(result.next);
  } catch (error) {
    location.assign("/portal/login");
  }
});

// A table wider than a phone scrolls sideways inside its .table-wrap; a scrollable region must
// be reachable from the keyboard (WCAG 2.1.1, axe "scrollable-region-focusable"), so each one
// is focusable and named after its table (caption, aria-label, or the heading before it).
Web.scrollRegions = (scope = document) => {
  scope.querySelectorAll(".table-wrap:not([tabindex])").forEach((wrap) => {
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    if (wrap.hasAttribute("aria-label") || wrap.hasAttribute("aria-labelledby")) return;
    const table = wrap.querySelector("table");
    let heading = wrap.previousElementSibling;
    while (heading && !/^H[1-6]$/.test(heading.tagName)) heading = heading.previousElementSibling;
    const name = table?.caption?.textContent.trim() || table?.getAttribute("aria-label")
      || heading?.textContent.trim() || Web.tr("表格", "Table");
    wrap.setAttribute("aria-label", name);
  });
};
Web.scrollRegions();
new MutationObserver(() => Web.scrollRegions()).observe(document.body, { childList: true, subtree: true });
