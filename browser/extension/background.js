// eseal service worker: takes page requests from the content script, asks the holder's
// consent in an extension window the page cannot reach, and talks to the native host
// (cn.eseal.host). The origin sent to the host is the browser's sender.origin / sender.url,
// never a value the page wrote. The PIN travels only consent window -> here -> host.
"use strict";

const HOST = "cn.eseal.host";
const pending = new Map(); // consent id -> {kind, origin, request, respond, windowId, status}

function err(code, message, message_zh, extra) {
  return { ok: false, error: { code, message, message_zh, ...(extra || {}) } };
}

const HOST_MISSING = err("HOST_NOT_INSTALLED",
  "the eseal USB-Key helper is not installed: run `eseal browser install` and reload",
  "未安装 eseal USB-Key 助手程序：请运行 `eseal browser install` 后刷新页面");

function callHost(message) {
  return new Promise((resolve) => {
    try {
      chrome.runtime.sendNativeMessage(HOST, message, (reply) => {
        const failure = chrome.runtime.lastError;
        if (failure || !reply) {
          const text = (failure && failure.message) || "";
          if (/not found|not installed|forbidden|Specified native/i.test(text)) {
            resolve(HOST_MISSING);
          } else {
            resolve(err("HOST_FAILED", `the USB-Key helper stopped: ${text}`,
                        "USB-Key 助手程序异常退出"));
          }
          return;
        }
        resolve(reply);
      });
    } catch (e) {
      resolve(HOST_MISSING);
    }
  });
}

function senderOrigin(sender) {
  if (sender.origin && sender.origin !== "null") return sender.origin;
  try { return new URL(sender.url).origin; } catch (e) { return null; }
}

function isConsentPage(sender) {
  return sender.id === chrome.runtime.id && typeof sender.url === "string" &&
    sender.url.startsWith(chrome.runtime.getURL("consent.html"));
}

function pageTokens(tokens) {
  // Any web page may ask for the status: it learns that keys are present, not who holds
  // them (holder, enterprise and credit code are shown only in the consent window).
  return (tokens || []).map((t) => ({
    label: t.label, keys: t.keys, locked: t.locked, tries_left: t.tries_left,
    certificates: (t.certificates || []).map((c) => ({ purpose: c.purpose,
                                                       not_after: c.not_after })),
  }));
}

function pageSafe(reply) {
  // Only what the page needs goes back: never the PIN, never the request echoed.
  if (!reply || reply.ok !== true) return reply && reply.error ? { ok: false, error: reply.error }
    : err("HOST_FAILED", "no answer", "无应答");
  const out = { ok: true };
  for (const name of ["answer", "signature", "certificate_serial", "tokens", "problem",
                      "protocol", "token"]) {
    if (name in reply) out[name] = reply[name];
  }
  if (out.tokens) out.tokens = pageTokens(out.tokens);
  return out;
}

function finish(id, reply) {
  const item = pending.get(id);
  if (!item) return;
  pending.delete(id);
  item.respond(pageSafe(reply));
  if (item.windowId !== undefined) chrome.windows.remove(item.windowId).catch(() => {});
}

async function openConsent(kind, origin, request, respond) {
  if (kind === "authenticate" && (!request.challenge || typeof request.challenge !== "object")) {
    respond(err("CHALLENGE_INVALID", "authenticate needs the server's challenge",
                "登录需要服务器下发的挑战", { field: "challenge" }));
    return;
  }
  if (kind === "sign" && (!request.prepared || typeof request.prepared !== "object")) {
    respond(err("PREPARED_INVALID", "sign needs the server's prepared seal",
                "签章需要服务器准备的签章数据", { field: "prepared" }));
    return;
  }
  for (const item of pending.values()) {
    if (item.origin === origin) { // one window per site: a page cannot flood the holder
      respond(err("CONSENT_BUSY", "a USB-Key window for this site is already open",
                  "该网站的 USB-Key 窗口已打开"));
      return;
    }
  }
  const id = crypto.randomUUID();
  pending.set(id, { kind, origin, request, respond, status: null }); // holds the site's slot
  const status = await callHost({ command: "status" });
  if (!status.ok) { pending.delete(id); respond(pageSafe(status)); return; }
  pending.get(id).status = status;
  const win = await chrome.windows.create({
    url: chrome.runtime.getURL(`consent.html#${id}`), type: "popup", width: 520, height: 640,
  });
  const item = pending.get(id);
  if (item) item.windowId = win.id;
}

chrome.windows.onRemoved.addListener((windowId) => {
  for (const [id, item] of pending) {
    if (item.windowId === windowId) {
      item.windowId = undefined;
      finish(id, err("USER_CANCELLED", "the holder closed the USB-Key window",
                     "持有人关闭了 USB-Key 窗口"));
    }
  }
});

function hostMessage(item, extra) {
  const base = { origin: item.origin, token: extra.token, pin: extra.pin };
  if (item.kind === "authenticate") {
    const c = item.request.challenge;
    return { ...base, command: "authenticate",
             challenge: { nonce: c.nonce, issued_at: c.issued_at, purpose: c.purpose } };
  }
  const p = item.request.prepared;
  return { ...base, command: extra.check ? "check" : "sign", signed_attrs: p.signed_attrs,
           document_digest: p.document_digest, digest_algorithm: p.digest_algorithm,
           filing: p.filing && { title: p.filing.title, enterprise: p.filing.enterprise,
                                 sha256: p.filing.sha256 } };
}

async function fromConsent(message) {
  const item = pending.get(message.id);
  if (!item) return err("CONSENT_GONE", "this request is no longer waiting", "该请求已失效");
  if (message.type === "consent-get") {
    const p = item.request.prepared || {};
    return { ok: true, kind: item.kind, origin: item.origin, tokens: item.status.tokens,
             problem: item.status.problem,
             filing: p.filing, document_digest: p.document_digest, seal_png: p.seal_png };
  }
  if (message.type === "consent-ping") return { ok: true }; // keeps the worker awake
  if (message.type === "consent-cancel") {
    finish(message.id, err("USER_CANCELLED", "the holder cancelled", "持有人已取消"));
    return { ok: true };
  }
  if (message.type === "consent-check") {
    if (item.kind !== "sign") return { ok: true };
    return pageSafe(await callHost(hostMessage(item, { token: message.token, check: true })));
  }
  if (message.type === "consent-confirm") {
    const reply = await callHost(hostMessage(item, { token: message.token, pin: message.pin }));
    const code = reply && reply.error && reply.error.code;
    const stay = ["PIN_INCORRECT", "PIN_REQUIRED", "TOKEN_CHOICE_REQUIRED", "PIN_LOCKED"];
    if (reply.ok || !stay.includes(code)) finish(message.id, reply);
    return pageSafe(reply);
  }
  if (message.type === "consent-close") {
    finish(message.id, message.error ? { ok: false, error: message.error }
      : err("USER_CANCELLED", "the holder cancelled", "持有人已取消"));
    return { ok: true };
  }
  return err("COMMAND_UNKNOWN", "unknown consent message", "未知消息");
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!message || typeof message !== "object") return false;
  if (isConsentPage(sender)) {
    fromConsent(message).then(sendResponse);
    return true;
  }
  if (message.type !== "page-request" || !sender.tab) return false;
  const origin = senderOrigin(sender);
  const request = message.request || {};
  if (!origin || !/^https?:\/\//.test(origin)) {
    sendResponse(err("ORIGIN_INVALID", "only http(s) pages may use the USB-Key",
                     "只有 http(s) 页面可以使用 USB-Key"));
    return false;
  }
  if (request.command === "status") {
    callHost({ command: "status" }).then((reply) => sendResponse(pageSafe(reply)));
    return true;
  }
  if (request.command === "authenticate" || request.command === "sign") {
    openConsent(request.command, origin, request, sendResponse);
    return true;
  }
  sendResponse(err("COMMAND_UNKNOWN", "unknown command", "未知命令"));
  return false;
});
