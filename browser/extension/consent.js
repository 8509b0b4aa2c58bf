// The consent and PIN window: an extension page the requesting page cannot read or script.
// It shows who asks (the origin the browser reported), the enterprise and holder on the key,
// and for a seal the filing's title, the first bytes of its SHA-256, the signed digest and
// the seal image. The PIN typed here goes to the service worker and on to the host only.
"use strict";
const id = location.hash.slice(1);
const $ = (name) => document.getElementById(name);
let kind = null;
let locked = false;

function send(message) {
  return new Promise((resolve) => chrome.runtime.sendMessage({ id, ...message }, resolve));
}

function short(hex) {
  return (hex || "").slice(0, 16).replace(/(.{4})/g, "$1 ").trim() + " …";
}

function b64hex(b64) {
  try { return [...atob(b64)].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(""); }
  catch (e) { return ""; }
}

function show(error) {
  const d = error.details || {};
  let text = `${error.message_zh || ""}\n${error.message || ""}`;
  if (error.code === "PIN_INCORRECT" && d.tries_left !== undefined) {
    text = `PIN 码错误，剩余 ${d.tries_left} 次\nWrong PIN: ${d.tries_left} tries left`;
  }
  if (error.code === "PIN_LOCKED") {
    locked = true;
    text = "USB-Key 已锁定：请联系管理员（CA 操作员）用管理员 PIN 解锁（eseal token unblock）。\n" +
      "The USB-Key is locked: ask a CA officer to unblock it with the SO PIN " +
      "(eseal token unblock).";
    $("ok").disabled = true;
    $("cancel").textContent = "关闭 / Close";
  }
  $("message").textContent = text;
  $("message").dataset.code = error.code || "";
}

function tokenFor(tokens) {
  const need = kind === "sign" ? "seal" : "login";
  return (tokens || []).filter((t) => (t.keys || []).includes(need));
}

function describe(token) {
  $("enterprise").textContent = token ? `${token.enterprise || "—"} (${token.uscc || "—"})` : "—";
  $("holder").textContent = token ? token.holder || "—" : "—";
  if (token && token.locked) show({ code: "PIN_LOCKED" });
}

async function load() {
  const info = await send({ type: "consent-get" });
  if (!info || !info.ok) { show(info ? info.error : { message: "gone", message_zh: "已失效" }); return; }
  kind = info.kind;
  $("origin").textContent = info.origin;
  $("heading").textContent = kind === "sign" ? "使用 USB-Key 签章 / Seal with your USB-Key"
    : "使用 USB-Key 登录 / Log in with your USB-Key";
  const tokens = tokenFor(info.tokens);
  for (const t of tokens) {
    const option = document.createElement("option");
    option.value = t.label;
    option.textContent = `${t.label} — ${t.holder || ""}`;
    $("token").append(option);
  }
  $("token-row").hidden = tokens.length < 2;
  $("token").addEventListener("change", () =>
    describe(tokens.find((t) => t.label === $("token").value)));
  describe(tokens[0]);
  if (tokens.length === 0) {
    const need = kind === "sign" ? "签章" : "登录";
    show({ code: "KEY_NOT_FOUND", message_zh: `请插入带有${need}密钥的 USB-Key`,
           message: `plug in a USB-Key with a ${kind === "sign" ? "seal" : "login"} key` });
    $("ok").disabled = true;
  }
  if (kind === "sign") {
    $("filing").hidden = false;
    $("title").textContent = (info.filing && info.filing.title) || "—";
    $("sha256").textContent = short(info.filing && info.filing.sha256);
    $("digest").textContent = short(b64hex(info.document_digest));
    if (info.seal_png) $("seal").src = `data:image/png;base64,${info.seal_png}`;
    if (tokens.length) {
      const check = await send({ type: "consent-check", token: $("token").value });
      if (!check.ok) { show(check.error); $("ok").disabled = true; }
    }
  }
  $("pin").focus();
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (locked) return;
  $("ok").disabled = true;
  const pin = $("pin").value;
  $("pin").value = "";
  const reply = await send({ type: "consent-confirm", token: $("token").value, pin });
  if (reply && !reply.ok) {
    show(reply.error);
    if (!locked) $("ok").disabled = false;
    $("pin").focus();
  }
});

$("cancel").addEventListener("click", () => {
  const error = locked ? {
    code: "PIN_LOCKED",
    message: "the USB-Key is locked: a CA officer must unblock it with the SO PIN",
    message_zh: "USB-Key 已锁定：需由管理员使用管理员 PIN 解锁" } : null;
  send({ type: "consent-close", error }).then(() => window.close());
});

// An MV3 service worker idles out after ~30 s without events, and the request waiting for
// this window lives there: while the holder reads and types, tell it we are still here.
setInterval(() => send({ type: "consent-ping" }), 20000);
load();
