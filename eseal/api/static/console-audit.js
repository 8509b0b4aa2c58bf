// The console's audit page: the chain verification (GET /audit/verify) shown on arrival and
// again on "verify now"; the search itself is a plain GET form rendered by the server.
"use strict";
(() => {
  const box = document.getElementById("chain");
  if (!box) return;
  const result = document.getElementById("chain-result");
  const findings = document.getElementById("chain-findings");
  const figures = document.getElementById("chain-figures");
  const button = document.getElementById("verify-now");

  async function verify() {
    button.disabled = true;
    box.dataset.state = "pending";
    result.dataset.ok = "";
    result.textContent = Web.tr("正在校验……", "Verifying…");
    const errorBox = document.getElementById("chain-error");
    errorBox.hidden = true;
    try {
      const report = await Web.api("GET", "/audit/verify");
      box.dataset.state = report.ok ? "ok" : "fail";
      result.dataset.ok = String(report.ok);
      result.textContent = report.ok
        ? Web.tr(`✓ 校验通过：${report.events} 个事件的哈希链完整，签名检查点与 CA 令牌记录一致。`,
                 `✓ OK: the hash chain of ${report.events} events is intact and the signed checkpoints match the CA token's record.`)
        : Web.tr(`✗ 校验失败：发现 ${report.findings.length} 处问题。`, `✗ FAILED: ${report.findings.length} finding(s).`);
      findings.replaceChildren(...report.findings.map((f) => {
        const li = document.createElement("li");
        li.textContent = `#${f.event_id ?? "—"} ${f.problem}: ${Web.lang === "en" ? f.message : f.message_zh} ${f.detail || ""}`;
        return li;
      }));
      findings.hidden = !report.findings.length;
      figures.textContent = Web.tr(
        `检查点 ${report.checkpoints} 个，已签名覆盖至事件 #${report.covered_through}，未覆盖 ${report.uncovered} 个（允许 ${report.allowed_uncovered}）。校验时间 ${new Date().toLocaleString()}`,
        `${report.checkpoints} checkpoints, signed through event #${report.covered_through}, ${report.uncovered} uncovered (allowed ${report.allowed_uncovered}). Verified at ${new Date().toLocaleString()}`);
    } catch (error) {
      box.dataset.state = "fail";
      result.textContent = Web.tr("无法校验。", "Could not verify.");
      Web.showError(error, box);
    } finally {
      button.disabled = false;
    }
  }
  button.addEventListener("click", verify);
  verify();
})();
