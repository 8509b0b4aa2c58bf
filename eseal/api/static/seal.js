// The minimal sealing page: the service prepares the seal of a stored draft, the USB-Key
// signs the prepared signed attributes after its holder saw what is sealed, the service
// finishes the seal, runs the filing intake and answers the receipt.
"use strict";
const params = new URLSearchParams(location.search);
const filingId = Number(params.get("filing"));

async function showFiling() {
  if (!Page.session()) { Page.showError({ code: "NOT_LOGGED_IN",
    message: "log in first (/login)", message_zh: "请先登录（/login）" }); return; }
  try {
    const filing = await Page.api("GET", `/filings/${filingId}`);
    document.getElementById("filing").textContent =
      `${filing.title} — ${filing.enterprise.name} — SHA-256 ${filing.draft.sha256.slice(0, 16)}…`;
  } catch (error) { Page.showError(error); }
}

document.getElementById("seal").addEventListener("click", async () => {
  Page.clearError();
  const number = (name) => {
    const value = document.getElementById(name).value;
    return value === "" ? null : Number(value);
  };
  try {
    const body = { page: number("page") || 1 };
    if (number("x") !== null && number("y") !== null) { body.x = number("x"); body.y = number("y"); }
    const prepared = await Page.api("POST", `/filings/${filingId}/browser-seal`, body);
    const signed = await window.eseal.sign(prepared);
    const receipt = await Page.api("POST", `/filings/${filingId}/browser-seal/finish`,
                                   { prepared_id: prepared.id, signature: signed.signature });
    const box = document.getElementById("receipt");
    box.hidden = false;
    box.dataset.sealedSha256 = receipt.receipt.sealed_sha256;
    box.textContent = `已受理 / Accepted: ${receipt.receipt.title} — ` +
      `SHA-256 ${receipt.receipt.sealed_sha256.slice(0, 16)}… (${receipt.receipt.pades_level})`;
  } catch (error) {
    Page.showError(error);
  }
});
showFiling();
Page.checkExtension();
