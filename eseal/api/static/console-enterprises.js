// The console's enterprise page: a live check of the unified social credit code as the
// officer types (length, alphabet, GB 32100-2015 check character), a character-by-character
// preview of the names with their code points (nothing replaced or normalised), registration
// and deregistration through the JSON API. The server is the authority: whatever the live
// check says, the form is sent and the server's field-level error is shown where it belongs.
"use strict";
(() => {
  const ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  const WEIGHTS = Array.from({ length: 17 }, (_, i) => { let w = 1; for (let k = 0; k < i; k++) w = (w * 3) % 31; return w; });

  function checkCharacter(first17) {
    let total = 0;
    for (let i = 0; i < 17; i++) total += ALPHABET.indexOf(first17[i]) * WEIGHTS[i];
    return ALPHABET[(31 - (total % 31)) % 31];
  }

  // {state: empty|partial|bad|ok, zh, en} for what has been typed so far.
  function usccCheck(code) {
    const chars = Array.from(code);
    if (!chars.length) return { state: "empty", zh: "请输入 18 位统一社会信用代码。", en: "Type the 18-character code." };
    for (let i = 0; i < chars.length; i++) {
      const ch = chars[i];
      if (ALPHABET.includes(ch)) continue;
      const cp = "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      let why = { zh: "不在代码字母表中（不使用 I、O、S、V、Z）", en: "is not in the code's alphabet (I, O, S, V and Z are never used)" };
      if (ALPHABET.includes(ch.toUpperCase())) why = { zh: "是小写字母，请按执照用大写", en: "is lowercase: type it in uppercase as printed" };
      else if (/\s/.test(ch)) why = { zh: "是空白字符", en: "is whitespace" };
      return { state: "bad", position: i + 1, zh: `第 ${i + 1} 位字符“${ch}”（${cp}）${why.zh}。`, en: `Character ${i + 1}, '${ch}' (${cp}), ${why.en}.` };
    }
    if (chars.length < 18) return { state: "partial", zh: `已输入 ${chars.length}/18 位。`, en: `${chars.length} of 18 characters.` };
    if (chars.length > 18) return { state: "bad", zh: `共 ${chars.length} 位，多于 18 位。`, en: `${chars.length} characters: more than 18.` };
    const expected = checkCharacter(code.slice(0, 17));
    if (code[17] !== expected) {
      return { state: "bad", position: 18, expected,
               zh: `校验码不符：按前 17 位，第 18 位应为“${expected}”，实际为“${code[17]}”——可能有字符录入错误。`,
               en: `Check character mismatch: the first 17 characters require '${expected}' in position 18, not '${code[17]}' — a character was probably mistyped.` };
    }
    return { state: "ok", zh: "✓ 长度、字符和校验码均正确。", en: "✓ Length, characters and check character are right." };
  }

  const HAN = [[0x3007, 0x3007], [0x3400, 0x4DBF], [0x4E00, 0x9FFF], [0xF900, 0xFAFF], [0x20000, 0x3FFFF]];
  const isHan = (cp) => HAN.some(([lo, hi]) => lo <= cp && cp <= hi);
  const isRare = (cp) => cp > 0xFFFF || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF);

  // One <li> per code point (not per UTF-16 unit): 𠮷 is one character, U+20BB7.
  function preview(list, value, hanHint) {
    list.replaceChildren();
    const points = Array.from(value);
    for (const ch of points) {
      const cp = ch.codePointAt(0);
      const li = document.createElement("li");
      if (isRare(cp)) li.className = "rare";
      if (/\s/.test(ch)) li.classList.add("space");
      const glyph = document.createElement("span");
      glyph.className = "glyph cjk";
      glyph.textContent = ch;
      const code = document.createElement("code");
      code.textContent = "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
      li.append(glyph, code);
      list.append(li);
    }
    list.dataset.count = String(points.length);
    if (hanHint && points.length && !points.some((ch) => isHan(ch.codePointAt(0)))) {
      const li = document.createElement("li");
      li.className = "hint-item warn";
      li.textContent = Web.tr("不含汉字：登记名称须为执照上的汉字，不能用拼音。", "No Chinese characters: the registered name is the one on the licence, not pinyin.");
      list.append(li);
    }
  }

  const form = document.getElementById("register-form");
  if (!form) return;
  const uscc = form.elements.uscc, live = document.getElementById("uscc-live");
  const showCheck = () => {
    const result = usccCheck(uscc.value);
    live.dataset.state = result.state;
    live.textContent = Web.tr(result.zh, result.en);
  };
  uscc.addEventListener("input", showCheck);
  const name = form.elements.name, rep = form.elements.legal_rep;
  name.addEventListener("input", () => preview(document.getElementById("name-preview"), name.value, true));
  rep.addEventListener("input", () => preview(document.getElementById("rep-preview"), rep.value, false));

  const table = document.querySelector("#enterprises tbody");

  function addRow(ent) {
    const row = document.createElement("tr");
    row.dataset.uscc = ent.uscc;
    row.dataset.status = ent.status;
    const cells = [ent.uscc, ent.name, ent.legal_rep].map((text, i) => {
      const td = document.createElement("td");
      td.className = i === 0 ? "mono" : "cjk";
      if (i === 0) {
        const a = document.createElement("a");
        a.href = `/console/enterprises/${encodeURIComponent(text)}`;
        a.textContent = text;
        td.append(a);
      } else {
        const span = document.createElement("span");
        if (i === 1) span.className = "ent-name";
        span.textContent = text;
        td.append(span);
        const rare = Array.from(new Set(Array.from(text))).filter((ch) => isRare(ch.codePointAt(0)));
        if (i === 1 && rare.length) {
          const small = document.createElement("small");
          small.className = "codepoints";
          rare.forEach((ch, k) => {
            const cp = document.createElement("span");
            cp.className = "cp";
            cp.dataset.codepoint = "U+" + ch.codePointAt(0).toString(16).toUpperCase();
            cp.textContent = `${ch} ${cp.dataset.codepoint}`;
            if (k) small.append(" · ");
            small.append(cp);
          });
          td.append(document.createElement("br"), small);
        }
      }
      return td;
    });
    const status = document.createElement("td");
    status.innerHTML = `<span class="badge good"></span>`;
    status.firstChild.textContent = Web.tr("正常", "active");
    const action = document.createElement("td");
    const button = document.createElement("button");
    Object.assign(button, { type: "button", className: "danger", textContent: Web.tr("注销", "Deregister") });
    Object.assign(button.dataset, { action: "deregister", uscc: ent.uscc, name: ent.name });
    action.append(button);
    row.append(...cells, status, action);
    table.querySelector("td[colspan]")?.closest("tr").remove();
    table.prepend(row);
    const count = document.querySelector("#list-title .count");
    if (count) count.textContent = `(${table.querySelectorAll("tr[data-uscc]").length})`;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(form);
    const done = document.getElementById("registered");
    done.hidden = true;
    const body = { uscc: uscc.value, name: name.value, legal_rep: rep.value,
                   contact_email: form.elements.contact_email.value || null };
    const button = form.querySelector("[data-action=register]");
    button.disabled = true;
    try {
      const ent = await Web.api("POST", "/officer/enterprises", body);
      addRow(ent);
      done.hidden = false;
      done.dataset.uscc = ent.uscc;
      done.textContent = Web.tr(`已登记：${ent.name}（${ent.uscc}）`, `Registered: ${ent.name} (${ent.uscc})`);
      form.reset();
      showCheck();
      preview(document.getElementById("name-preview"), "", false);
      preview(document.getElementById("rep-preview"), "", false);
    } catch (error) {
      Web.showError(error, form);
    } finally {
      button.disabled = false;
    }
  });

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action=deregister]");
    if (!button) return;
    const { uscc: code, name: entName } = button.dataset;
    const sure = await Web.confirm(Web.tr(
      `注销企业“${entName}”（${code}）？注销后不再为其签发任何证书；已有证书保持原状，需另行吊销。`,
      `Deregister "${entName}" (${code})? Nothing new will be issued to it; its certificates stay as they are until revoked.`));
    if (!sure) return;
    try {
      await Web.api("POST", `/officer/enterprises/${encodeURIComponent(code)}/deregister`);
      const row = button.closest("tr");
      row.dataset.status = "deregistered";
      const badge = row.querySelector(".badge");
      badge.className = "badge revoked";
      badge.textContent = Web.tr("已注销", "deregistered");
      button.remove();
      Web.toast(Web.tr(`已注销 ${entName}`, `Deregistered ${entName}`));
    } catch (error) {
      Web.showError(error, document.getElementById("list-error").parentElement);
    }
  });
})();
