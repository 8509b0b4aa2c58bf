// The public verify page: the chosen PDF goes to POST /verify/pages (no login); the answer is
// the report of `eseal verify` plus the sealed pages as images with each seal's outline in
// the image's pixels. The report is shown in both languages (the page's first), the overall
// verdict large, then one block per signature, then the pages with numbered boxes over each
// seal (positioned in per cent of the image, so they follow the image at any width).
"use strict";
(() => {
  const WORDS = {
    valid: ["有效", "VALID"], invalid: ["无效", "INVALID"], indeterminate: ["无法判定", "INDETERMINATE"],
    seal: ["电子签章", "seal"], document_timestamp: ["文档时间戳", "document timestamp"],
    timestamp: ["时间戳", "timestamp"], claimed: ["签章方声明", "claimed by the signer"],
    whole_file: ["整个文件", "whole file"], revision: ["部分版本", "a revision"], unclear: ["不明确", "unclear"],
    none: ["无", "none"], allowed: ["仅允许的改动", "allowed changes only"],
    disallowed: ["不允许的改动", "changes that are not allowed"], unknown: ["未知", "unknown"],
    good: ["正常", "good"], revoked: ["已吊销", "revoked"], on_hold: ["已冻结", "on hold (frozen)"],
    not_checked: ["未检查", "not checked"], embedded: ["文件内嵌", "embedded in the file"],
    fetched: ["联网获取", "fetched"], live: ["CA 实时记录", "the CA's live records"],
    info: ["说明", "info"], login: ["登录", "login"],
  };
  const word = (w) => (w === null || w === undefined ? "—"
    : WORDS[w] ? Web.tr(`${WORDS[w][0]}（${WORDS[w][1]}）`, `${WORDS[w][1]} (${WORDS[w][0]})`) : String(w));
  let labels = {};
  const label = (key, en) => {
    const english = en || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
    const zh = labels[key] || "";
    return Web.tr(zh ? `${zh} ${english}` : english, zh ? `${english} ${zh}` : english);
  };
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
    }
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const time = (iso) => (iso ? iso.replace("T", " ").replace(/\+00:00$/, " UTC") : "—");

  function addFact(dl, key, value, en) {
    dl.append(el("dt", {}, label(key, en)), el("dd", {}, value));
  }

  function findings(list) {
    const ul = el("ul", { class: "findings" });
    for (const p of list) {
      const li = el("li", { class: `finding ${p.severity}`, "data-code": p.code });
      li.append(el("code", {}, p.code), document.createTextNode(` [${word(p.severity)}] `),
                el("span", { lang: "zh-CN" }, p.message_zh), document.createTextNode(" / "),
                el("span", { lang: "en" }, p.message));
      ul.append(li);
    }
    return ul;
  }

  function revocation(rev) {
    let text = word(rev.status);
    const extra = [];
    if (rev.source) extra.push(word(rev.source));
    if (rev.reason) extra.push(rev.reason);
    if (rev.revoked_at) extra.push(Web.tr(`自 ${time(rev.revoked_at)}`, `since ${time(rev.revoked_at)}`));
    return extra.length ? `${text}（${extra.join("，")}）` : text;
  }

  function signatureBlock(sig, number) {
    const art = el("article", { class: `card seal-report verdict-${sig.verdict}`, "data-field": sig.field_name,
                                "data-verdict": sig.verdict, "data-number": String(number) });
    const head = el("h2", {}, "");
    head.append(el("span", { class: "seal-number" }, String(number)),
                document.createTextNode(` ${word(sig.kind)} — ${sig.field_name} — `),
                el("strong", { class: `verdict-word ${sig.verdict}` }, word(sig.verdict)));
    art.append(head);
    const dl = el("dl", { class: "facts" });
    const s = sig.signer;
    if (s) {
      addFact(dl, "enterprise", s.enterprise || "—");
      addFact(dl, "credit_code", s.credit_code || "—", "Credit code");
      addFact(dl, "holder", s.holder || "—");
      addFact(dl, "profile", word(s.profile), "Certificate profile");
      addFact(dl, "certificate_serial", s.certificate_serial);
    }
    addFact(dl, "signing_time", sig.signing_time ? `${time(sig.signing_time)}（${word(sig.signing_time_source)}）` : "—");
    addFact(dl, "timestamp_authority", sig.timestamp_authority || Web.tr("无时间戳", "no timestamp"));
    const i = sig.integrity;
    addFact(dl, "integrity", i.digest_ok && i.signature_ok ? Web.tr("完整（intact）", "intact (完整)")
      : Web.tr(`不完整：摘要${i.digest_ok ? "一致" : "不一致"}，签名值${i.signature_ok ? "正确" : "错误"}`,
               `NOT intact: digest ${i.digest_ok ? "ok" : "MISMATCH"}, signature ${i.signature_ok ? "ok" : "INVALID"}`));
    const c = sig.coverage;
    addFact(dl, "coverage", word(c.scope) + (c.scope === "revision" ? ` (${c.revision}/${c.total_revisions})` : ""));
    addFact(dl, "changes_after", word(sig.changes_after.status), "Changes after signing");
    addFact(dl, "chain", (sig.chain.trusted ? Web.tr("可信（trusted）", "trusted (可信)") : Web.tr("不可信（not trusted）", "not trusted (不可信)"))
      + (sig.chain.trust_anchor ? ` → ${sig.chain.trust_anchor}` : ""), "Certificate chain");
    if (sig.kind === "seal") {
      addFact(dl, "revocation_at_signing", revocation(sig.revocation_at_signing), "Revocation at signing");
      addFact(dl, "revocation_now", revocation(sig.revocation_now));
      addFact(dl, "pades_level", sig.pades_level || "—", "PAdES level");
    }
    addFact(dl, "ades_indication", sig.ades_indication + (sig.ades_subindication ? ` / ${sig.ades_subindication}` : ""), "AdES indication");
    if (sig.widget) {
      addFact(dl, "widget", Web.tr(`第 ${sig.widget.page} 页`, `page ${sig.widget.page}`), "Where it shows");
    }
    art.append(dl);
    if (sig.problems.length) art.append(findings(sig.problems));
    return art;
  }

  function pageView(page, numbers) {
    const fig = el("figure", { class: "page-view", "data-page": String(page.index) });
    const frame = el("div", { class: "page-frame" });
    const img = el("img", { src: page.image, alt: Web.tr(`第 ${page.index} 页`, `Page ${page.index}`),
                            width: page.width_px, height: page.height_px });
    frame.append(img);
    for (const o of page.outlines) {
      const n = numbers.get(o.field_name) || "?";
      const box = el("div", { class: "seal-box", "data-field": o.field_name, "data-number": String(n),
                              title: `${n}: ${o.field_name}` });
      const [left, top, width, height] = o.px;
      box.style.left = `${(100 * left) / page.width_px}%`;
      box.style.top = `${(100 * top) / page.height_px}%`;
      box.style.width = `${(100 * width) / page.width_px}%`;
      box.style.height = `${(100 * height) / page.height_px}%`;
      box.append(el("span", { class: "seal-label" }, String(n)));
      frame.append(box);
    }
    fig.append(frame, el("figcaption", {}, Web.tr(
      `第 ${page.index} 页（${page.width_pt} × ${page.height_pt} 磅）`, `Page ${page.index} (${page.width_pt} × ${page.height_pt} pt)`)));
    return fig;
  }

  function show(report) {
    labels = report.labels_zh || {};
    const result = document.getElementById("result");
    const verdict = document.getElementById("verdict");
    verdict.className = `verdict ${report.verdict}`;
    verdict.dataset.verdict = report.verdict;
    verdict.textContent = `${label("verdict")}: ${word(report.verdict)}`;
    const facts = document.getElementById("file-facts");
    facts.replaceChildren();
    addFact(facts, "file_sha256", report.file_sha256, "File SHA-256");
    addFact(facts, "file_size", `${report.file_size.toLocaleString()}`);
    addFact(facts, "validated_at", time(report.validated_at));
    addFact(facts, "trust_anchors", report.trust_anchors.join("; ") || "—");
    addFact(facts, "exit_code", String(report.exit_code), "eseal verify exit code");
    document.getElementById("doc-problems").replaceWith(Object.assign(findings(report.problems), { id: "doc-problems" }));
    const seals = document.getElementById("seals");
    seals.replaceChildren();
    const numbers = new Map();
    report.signatures.forEach((sig, i) => {
      numbers.set(sig.field_name, i + 1);
      seals.append(signatureBlock(sig, i + 1));
    });
    const pages = document.getElementById("pages");
    pages.replaceChildren();
    for (const page of report.pages || []) pages.append(pageView(page, numbers));
    const problem = document.getElementById("pages-problem");
    problem.hidden = !report.pages_problem;
    if (report.pages_problem) problem.textContent = Web.text(report.pages_problem);
    result.hidden = false;
    verdict.focus();
  }

  const box = document.getElementById("verify-box");
  const input = document.getElementById("file");
  const button = document.getElementById("verify");
  button.addEventListener("click", async () => {
    Web.clearErrors(box);
    const file = input.files[0];
    if (!file) {
      Web.showError({ code: "FILE_REQUIRED", field: "data", message: "choose a PDF file first",
                      message_zh: "请先选择 PDF 文件" }, box);
      return;
    }
    if (file.size > Number(input.dataset.limit)) {
      Web.showError({ code: "UPLOAD_TOO_LARGE", field: "data",
                      message: `the file is larger than ${input.dataset.limit} bytes`,
                      message_zh: `文件超过 ${input.dataset.limit} 字节的上限` }, box);
      return;
    }
    button.disabled = true;
    document.getElementById("busy").hidden = false;
    try {
      show(await Web.api("POST", "/verify/pages", file, { contentType: "application/pdf" }));
    } catch (error) {
      document.getElementById("result").hidden = true;
      Web.showError(error, box);
    } finally {
      button.disabled = false;
      document.getElementById("busy").hidden = true;
    }
  });
})();
