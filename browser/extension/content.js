// eseal content script: the bridge between the page API (window.postMessage) and the
// extension's service worker. It forwards only the fields each command needs; the origin is
// never taken from the page (the service worker reads it from the browser's sender).
(() => {
  "use strict";
  const FIELDS = {
    status: [],
    authenticate: ["challenge"],
    sign: ["prepared"],
  };
  window.addEventListener("message", (event) => {
    if (event.source !== window || !event.data || event.data.type !== "eseal-request") return;
    const { id, command } = event.data;
    if (typeof id !== "string" || id.length > 64) return;
    const reply = (body) =>
      window.postMessage({ type: "eseal-response", id, ...body }, window.location.origin);
    if (command === "ping") {
      reply({ ok: true, extension: chrome.runtime.getManifest().version });
      return;
    }
    if (!Object.prototype.hasOwnProperty.call(FIELDS, command)) {
      reply({ ok: false, error: { code: "COMMAND_UNKNOWN", message: "unknown command",
                                  message_zh: "未知命令" } });
      return;
    }
    const request = { command };
    for (const name of FIELDS[command]) request[name] = event.data[name];
    try {
      chrome.runtime.sendMessage({ type: "page-request", request }, (answer) => {
        if (chrome.runtime.lastError || !answer) {
          reply({ ok: false, error: { code: "EXTENSION_ERROR",
            message: "the eseal extension did not answer (reload the page)",
            message_zh: "eseal 扩展程序无响应（请刷新页面）" } });
          return;
        }
        reply(answer);
      });
    } catch (e) {
      reply({ ok: false, error: { code: "EXTENSION_ERROR",
        message: "the eseal extension was updated or removed: reload the page",
        message_zh: "eseal 扩展程序已更新或被移除，请刷新页面" } });
    }
  });
  document.documentElement.dataset.esealExtension = chrome.runtime.getManifest().version;
})();
