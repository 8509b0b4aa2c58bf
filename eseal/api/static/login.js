// The minimal login page: challenge from the service, signature from the USB-Key through the
// extension (for the origin the browser reports), verification by the same /auth/verify as
// `eseal login`.
"use strict";
document.getElementById("login").addEventListener("click", async () => {
  Page.clearError();
  try {
    const challenge = await Page.api("POST", "/auth/challenge");
    const answer = await window.eseal.authenticate(challenge);
    const result = await Page.api("POST", "/auth/verify", answer);
    sessionStorage.setItem("eseal-session", result.session);
    const me = await Page.api("GET", "/auth/me");
    const box = document.getElementById("account");
    box.hidden = false;
    box.dataset.accountId = me.account_id;
    box.textContent = `已登录 / Logged in: ${me.name} (${me.role}, ${me.enterprise || "—"})`;
  } catch (error) {
    Page.showError(error);
  }
});
Page.checkExtension();
