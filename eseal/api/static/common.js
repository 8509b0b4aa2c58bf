// Shared by the login and sealing pages: JSON calls to the service, bilingual errors,
// and the install help shown when the extension or its helper does not answer.
"use strict";
const Page = {
  session() { return sessionStorage.getItem("eseal-session"); },
  async api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    const session = Page.session();
    if (session) headers.Authorization = `Bearer ${session}`;
    const response = await fetch(path, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.message || `HTTP ${response.status}`);
      Object.assign(error, data);
      throw error;
    }
    return data;
  },
  showError(error) {
    const box = document.getElementById("error");
    box.hidden = false;
    box.dataset.code = error.code || "";
    const d = error.details || {};
    let text = `${error.code || "ERROR"}: ${error.message_zh || ""} / ${error.message || ""}`;
    if (d.tries_left !== undefined) text += ` (剩余 ${d.tries_left} 次 / ${d.tries_left} tries left)`;
    box.textContent = text;
    if (["EXTENSION_MISSING", "HOST_NOT_INSTALLED", "EXTENSION_ERROR"].includes(error.code)) {
      document.getElementById("install-help").hidden = false;
    }
  },
  clearError() { document.getElementById("error").hidden = true; },
  async checkExtension() {
    try {
      const status = await window.eseal.status();
      const keys = (status.tokens || []).map((t) => `${t.label} (${(t.keys || []).join("+")})`);
      document.getElementById("keys").textContent = keys.length ? keys.join(", ")
        : "未检测到 USB-Key / no USB-Key plugged in";
    } catch (error) {
      Page.showError(error);
    }
  },
};
