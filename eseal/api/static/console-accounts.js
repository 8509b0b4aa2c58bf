// The console's account page: unlock a locked account and unblock a USB-Key (both need a
// fresh USB-Key re-authentication: Web.withStepUp), approve a legal representative's remote
// unblock request (the one-time authorisation is shown once), and enrollment codes for staff
// (shown once). Every change is a call to the JSON API, which checks role, CSRF and step-up.
"use strict";
(() => {
  const accounts = document.querySelector("#accounts tbody");
  accounts?.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action=unlock]");
    if (!button) return;
    const { accountId, name } = button.dataset;
    const sure = await Web.confirm(Web.tr(`解除账户 #${accountId}（${name}）的锁定？`,
                                          `Lift the lockout of account #${accountId} (${name})?`));
    if (!sure) return;
    const box = document.getElementById("accounts-error");
    try {
      await Web.withStepUp(() => Web.api("POST", `/officer/accounts/${accountId}/unlock`));
      const row = button.closest("tr");
      row.dataset.locked = "false";
      const badge = row.querySelector(".badge");
      badge.className = "badge good";
      badge.textContent = Web.tr("正常", "active");
      button.remove();
      Web.toast(Web.tr(`已解除 ${name} 的锁定`, `${name} is unlocked`));
    } catch (error) {
      Web.showError(error, box.parentElement);
    }
  });

  const requests = document.querySelector("#unblock-requests tbody");
  requests?.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action=approve-unblock]");
    if (!button) return;
    const { requestId, label } = button.dataset;
    const sure = await Web.confirm(Web.tr(
      `已核实持有人身份，批准 USB-Key ${label} 的远程解锁申请 #${requestId}？`,
      `Identity checked: approve the remote unblock request #${requestId} for USB-Key ${label}?`));
    if (!sure) return;
    try {
      const answer = await Web.withStepUp(() => Web.api("POST", `/unblock-requests/${requestId}/approve`));
      document.getElementById("authorisation-code").textContent = answer.authorisation;
      document.getElementById("authorisation").hidden = false;
      button.closest("tr").remove();
    } catch (error) {
      Web.showError(error, document.getElementById("unblock-error").parentElement);
    }
  });

  const unblock = document.getElementById("token-unblock-form");
  unblock?.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(unblock);
    const label = unblock.elements.label.value, pin = unblock.elements.new_pin.value;
    try {
      await Web.withStepUp(() => Web.api("POST", `/officer/tokens/${encodeURIComponent(label)}/unblock`, { new_pin: pin }));
      unblock.reset();
      Web.toast(Web.tr(`USB-Key ${label} 已解锁，新 PIN 已生效`, `USB-Key ${label} is unblocked with the new PIN`));
    } catch (error) {
      if (error.field === "label" || error.code === "TOKEN_NOT_FOUND") error.field = "label";
      Web.showError(error, unblock);
    } finally {
      unblock.elements.new_pin.value = "";
    }
  });

  const codes = document.getElementById("code-form");
  codes?.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(codes);
    document.getElementById("code-shown").hidden = true;
    const body = { role: codes.elements.role.value, holder: codes.elements.holder.value,
                   uscc: codes.elements.uscc.value || null };
    try {
      const made = await Web.api("POST", "/officer/enrollment-codes", body);
      document.getElementById("code-value").textContent = made.code;
      document.getElementById("code-expires").textContent = Web.tr(`有效至 ${made.expires_at}`, `valid until ${made.expires_at}`);
      document.getElementById("code-shown").hidden = false;
      codes.reset();
    } catch (error) {
      Web.showError(error, codes);
    }
  });
})();
