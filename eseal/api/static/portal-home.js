// The portal home: "this was not me" / report the USB-Key lost (挂失). A confirmation that
// names the key and the enterprise, then POST /me/report-lost; the answer says what was
// frozen and how to get it unfrozen. The session is over after that: the next page load goes
// to the login page, which says why.
"use strict";
(() => {
  const button = document.getElementById("report-lost");
  if (!button) return;
  const box = document.getElementById("report-lost-box");
  const d = button.dataset;

  async function reportLost(loginId, when) {
    const what = Web.tr(
      `冻结 ${d.holder} 的 USB-Key（${d.tokens || "—"}）上的所有在用证书（${d.serials || "—"}），企业：${d.enterprise}（${d.uscc}）。` +
      (when ? `您表示 ${when} 的登录不是本人所为。` : "") +
      "冻结后您会立即退出登录，只有 CA 管理员核实后才能解冻。确定挂失？",
      `Freeze every current certificate (${d.serials || "—"}) on the USB-Key ${d.tokens || "—"} of ${d.holder}, enterprise ${d.enterprise} (${d.uscc}).` +
      (when ? ` You say the login at ${when} was not you.` : "") +
      " You will be logged out at once and only a CA officer can unfreeze it after checking. Freeze it?");
    if (!(await Web.confirm(what))) return;
    Web.clearErrors(box);
    try {
      const result = await Web.api("POST", "/me/report-lost",
                                   { login_id: loginId ? Number(loginId) : null });
      const serials = result.frozen.map((f) => f.serial).join(", ");
      const summary = document.getElementById("lost-summary");
      summary.textContent = Web.tr(
        `${result.holder} 的 USB-Key（${result.tokens.join(", ")}）上的 ${result.frozen.length} 张证书已冻结：${serials}。企业：${result.enterprise}（${result.uscc}）。`,
        `${result.frozen.length} certificates on the USB-Key ${result.tokens.join(", ")} of ${result.holder} are frozen: ${serials}. Enterprise: ${result.enterprise} (${result.uscc}).`);
      summary.dataset.frozen = String(result.frozen.length);
      document.querySelectorAll("button.not-me, #report-lost").forEach((b) => { b.disabled = true; });
      const done = document.getElementById("lost-result");
      done.hidden = false;
      done.scrollIntoView({ block: "start" });
      document.getElementById("continue").focus();
    } catch (error) {
      Web.showError(error, box);
    }
  }

  button.addEventListener("click", () => reportLost(null, ""));
  document.querySelectorAll("button.not-me").forEach((b) => {
    b.addEventListener("click", () => reportLost(b.dataset.loginId, b.dataset.when));
  });
})();
