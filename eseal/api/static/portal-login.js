// The login page: which USB-Keys the extension sees, then the login itself (Web.login);
// without the extension or its helper, the install help.
"use strict";
(async () => {
  const button = document.getElementById("login");
  button.addEventListener("click", async () => {
    Web.clearErrors();
    try {
      const result = await Web.login({ next: button.dataset.next });
      location.assign(result.next);
    } catch (error) {
      Web.showError(error);
    }
  });
  try {
    const status = await window.eseal.status();
    const keys = (status.tokens || []).map((t) => t.label);
    document.getElementById("keys").textContent = keys.length ? keys.join(", ")
      : Web.tr("未检测到 USB-Key，请插入", "none: please insert your USB-Key");
  } catch (error) {
    document.getElementById("keys").textContent = Web.tr("无法访问", "not reachable");
    Web.showError(error);
  }
})();
