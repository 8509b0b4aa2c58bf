// eseal page API: window.eseal.status(), .authenticate(challenge), .sign(prepared).
// One file a portal includes (<script src="/static/eseal.js">). It talks to the eseal
// browser extension's content script with window.postMessage; the extension asks the holder
// in its own window and signs with the USB-Key through the native host. Promises resolve
// with the extension's answer or reject with {code, message, message_zh}; the PIN never
// reaches this page.
(function () {
  "use strict";
  const waiting = new Map();
  let counter = 0;

  window.addEventListener("message", (event) => {
    if (event.source !== window || !event.data || event.data.type !== "eseal-response") return;
    const resolve = waiting.get(event.data.id);
    if (resolve) { waiting.delete(event.data.id); resolve(event.data); }
  });

  const MISSING = {
    ok: false,
    error: {
      code: "EXTENSION_MISSING",
      message: "the eseal browser extension is not installed or not enabled",
      message_zh: "未安装或未启用 eseal 浏览器扩展程序",
    },
  };

  function call(command, fields, timeoutMs) {
    return new Promise((resolve) => {
      counter += 1;
      const id = `r${Date.now().toString(36)}${counter}`;
      waiting.set(id, resolve);
      window.postMessage({ type: "eseal-request", id, command, ...fields },
                         window.location.origin);
      if (timeoutMs) {
        setTimeout(() => { if (waiting.delete(id)) resolve(MISSING); }, timeoutMs);
      }
    });
  }

  function unwrap(reply) {
    if (reply && reply.ok) return reply;
    const e = (reply && reply.error) || MISSING.error;
    const error = new Error(`${e.code}: ${e.message} / ${e.message_zh}`);
    Object.assign(error, e);
    throw error;
  }

  async function present() {
    if (document.documentElement.dataset.esealExtension) return;
    unwrap(await call("ping", {}, 1500));
  }

  window.eseal = {
    async status() { await present(); return unwrap(await call("status", {})); },
    async authenticate(challenge) {
      await present();
      return unwrap(await call("authenticate", { challenge })).answer;
    },
    async sign(prepared) {
      await present();
      const reply = unwrap(await call("sign", { prepared }));
      return { signature: reply.signature, certificate_serial: reply.certificate_serial };
    },
  };
})();
