// The officer console's certificate pages: freeze / unfreeze / renew / revoke on a
// certificate's page, and the batch renewal (preview, confirm, renew in chunks with
// progress). Every change goes to the officer JSON API with the page's CSRF token; revoke
// and batch renewal go through Web.withStepUp (a USB-Key proof within 5 minutes). The page
// renders everything else on the server.
"use strict";

// serials per POST /officer/renewals (the form's data-chunk, at most 20): progress stays
// live and each request short
const CHUNK = 20;

// --- one certificate ---------------------------------------------------------------------
function certificatePage(card) {
  const serial = card.dataset.serial;
  const who = () => {
    const ent = card.dataset.enterprise
      ? `${card.dataset.enterpriseName}（${card.dataset.enterprise}）` : Web.tr("CA 工作人员", "CA staff");
    return Web.tr(`持有人 ${card.dataset.holder}，企业 ${ent}`,
                  `holder ${card.dataset.holder}, enterprise ${ent}`);
  };
  const statusForm = document.getElementById("status-form");

  async function act(button, question, call, done) {
    Web.clearErrors(statusForm);
    if (!(await Web.confirm(question))) return;
    button.disabled = true;
    try {
      await call();
      Web.toast(done);
      location.reload();
    } catch (error) {
      Web.showError(error, button.form);
    } finally {
      button.disabled = false;
    }
  }

  const freeze = document.getElementById("freeze");
  freeze?.addEventListener("click", () => act(freeze,
    Web.tr(`冻结证书 ${serial}（${who()}）？冻结立即生效，该证书的登录会话将被终止。`,
           `Freeze certificate ${serial} (${who()})? It takes effect at once and ends the sessions opened with it.`),
    () => Web.api("POST", `/officer/certificates/${serial}/freeze`),
    Web.tr("已冻结", "Frozen")));

  const unfreeze = document.getElementById("unfreeze");
  unfreeze?.addEventListener("click", () => act(unfreeze,
    Web.tr(`解冻证书 ${serial}（${who()}）？`, `Unfreeze certificate ${serial} (${who()})?`),
    () => Web.api("POST", `/officer/certificates/${serial}/unfreeze`),
    Web.tr("已解冻", "Unfrozen")));

  const renew = document.getElementById("renew");
  renew?.addEventListener("click", () => act(renew,
    Web.tr(`续期证书 ${serial}（${who()}）？`, `Renew certificate ${serial} (${who()})?`),
    async () => {
      const result = await Web.api("POST", `/officer/certificates/${serial}/renew`);
      if (result.skipped) throw Object.assign(new Error(result.skipped.reason), {
        code: "ALREADY_RENEWED", message: result.skipped.reason,
        message_zh: `已续期：${result.skipped.reason}` });
    },
    Web.tr("已续期", "Renewed")));

  const revokeForm = document.getElementById("revoke-form");
  revokeForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(revokeForm);
    const reason = revokeForm.elements.reason.value;
    if (!reason) { // the service refuses it too (422 reason); say so before asking for the key
      Web.showError({ code: "REASON_REQUIRED", field: "reason",
                      message: "choose the RFC 5280 reason for the revocation",
                      message_zh: "请选择吊销原因（RFC 5280）" }, revokeForm);
      return;
    }
    const ok = await Web.confirm(Web.tr(
      `吊销证书 ${serial}（${who()}），原因 ${reason}？吊销不可撤销，CRL 将重新签发。`,
      `Revoke certificate ${serial} (${who()}) for ${reason}? A revocation cannot be undone; the CRLs are re-issued.`));
    if (!ok) return;
    const button = document.getElementById("revoke");
    button.disabled = true;
    try {
      await Web.withStepUp(() => Web.api("POST", `/officer/certificates/${serial}/revoke`, { reason }));
      Web.toast(Web.tr("已吊销", "Revoked"));
      location.reload();
    } catch (error) {
      Web.showError(error, revokeForm);
    } finally {
      button.disabled = false;
    }
  });
}

// --- batch renewal -------------------------------------------------------------------------
function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renewalPage(form) {
  const result = document.getElementById("preview-result");
  const confirmButton = document.getElementById("confirm-renew");
  const box = document.getElementById("progress-box");
  const chunk = Math.min(CHUNK, Number(form.dataset.chunk) || CHUNK);
  let planned = [];

  function request() {
    const days = form.elements.expiring_within_days.value.trim();
    const serials = form.elements.serials.value.split(/[\s,]+/).filter(Boolean);
    const body = { serials };
    if (days !== "") body.expiring_within_days = /^\d+$/.test(days) ? Number(days) : days;
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(form);
    result.hidden = true;
    box.hidden = true;
    confirmButton.disabled = true;
    try {
      const preview = await Web.api("POST", "/officer/renewals/preview", request());
      planned = preview.renew.map((r) => r.serial);
      const renewBody = document.querySelector("#to-renew tbody");
      const leftBody = document.querySelector("#not-renewed tbody");
      renewBody.replaceChildren();
      leftBody.replaceChildren();
      for (const r of preview.renew) {
        const tr = renewBody.insertRow();
        tr.dataset.serial = r.serial;
        cell(tr, r.serial, "serial"); cell(tr, r.holder);
        cell(tr, r.not_after.slice(0, 10)); cell(tr, r.new_not_after.slice(0, 10));
      }
      for (const r of preview.skipped) {
        const tr = leftBody.insertRow();
        tr.dataset.serial = r.serial; tr.dataset.code = "SKIPPED";
        cell(tr, r.serial, "serial"); cell(tr, Web.tr(`已续期，跳过（${r.reason}）`, `skipped: ${r.reason}`));
      }
      for (const r of preview.refused) {
        const tr = leftBody.insertRow();
        tr.dataset.serial = r.serial; tr.dataset.code = r.code;
        cell(tr, r.serial, "serial"); cell(tr, Web.text(r));
      }
      const c = preview.counts;
      document.getElementById("preview-counts").textContent = Web.tr(
        `将续期 ${c.renew} 张；跳过 ${c.skipped} 张；不能续期 ${c.refused} 张。尚未做任何更改。`,
        `${c.renew} would be renewed; ${c.skipped} skipped; ${c.refused} refused. Nothing has changed yet.`);
      result.hidden = false;
      result.dataset.renew = String(c.renew);
      confirmButton.disabled = planned.length === 0;
    } catch (error) {
      Web.showError(error, form);
    }
  });

  confirmButton.addEventListener("click", async () => {
    const total = planned.length;
    const ok = await Web.confirm(Web.tr(
      `续期预览中的 ${total} 张证书？每张证书保留原密钥，新证书的到期日如预览所示。`,
      `Renew the ${total} certificates of the preview? Each keeps its key; the new expiry dates are as previewed.`));
    if (!ok) return;
    confirmButton.disabled = true;
    form.querySelector("#preview").disabled = true;
    box.hidden = false;
    const bar = document.getElementById("progress");
    const count = document.getElementById("progress-count");
    const alertBox = box.querySelector(".error[role=alert]");
    bar.max = total; bar.value = 0;
    const tally = { renewed: [], skipped: [], refused: [] };
    const show = () => {
      const done = tally.renewed.length + tally.skipped.length + tally.refused.length;
      bar.value = done;
      box.dataset.done = String(done);
      box.dataset.renewed = String(tally.renewed.length);
      count.textContent = Web.tr(`已处理 ${done} / ${total}（已续期 ${tally.renewed.length}）`,
                                 `${done} of ${total} done (${tally.renewed.length} renewed)`);
    };
    show();
    try {
      for (let i = 0; i < total; i += chunk) {
        const serials = planned.slice(i, i + chunk);
        const answer = await Web.withStepUp(() => Web.api("POST", "/officer/renewals", { serials }));
        tally.renewed.push(...answer.renewed);
        tally.skipped.push(...answer.skipped);
        tally.refused.push(...answer.refused);
        show();
      }
    } catch (error) {
      Web.showError(error, box);
    }
    summary(tally, total);
  });
}

function summary(tally, total) {
  const box = document.getElementById("summary");
  const list = document.getElementById("summary-list");
  list.replaceChildren();
  for (const r of tally.renewed) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/console/certificates/${r.new_serial || r.serial}`;
    a.textContent = r.new_serial || r.serial;
    li.append(Web.tr(`${r.old_serial || r.serial} 已续期为 `, `${r.old_serial || r.serial} renewed as `), a);
    list.appendChild(li);
  }
  for (const r of tally.skipped) {
    const li = document.createElement("li");
    li.textContent = Web.tr(`${r.serial} 跳过：${r.reason}`, `${r.serial} skipped: ${r.reason}`);
    list.appendChild(li);
  }
  for (const r of tally.refused) {
    const li = document.createElement("li");
    li.className = "error";
    li.textContent = `${r.serial}: ${Web.text(r)}`;
    list.appendChild(li);
  }
  document.getElementById("summary-counts").textContent = Web.tr(
    `共 ${total} 张：已续期 ${tally.renewed.length}，跳过 ${tally.skipped.length}，未续期 ${tally.refused.length}。`,
    `${total} in all: ${tally.renewed.length} renewed, ${tally.skipped.length} skipped, ${tally.refused.length} refused.`);
  box.hidden = false;
  box.dataset.finished = "yes";
}

const card = document.getElementById("cert");
if (card) certificatePage(card);
const pick = document.getElementById("pick");
if (pick) renewalPage(pick);
