// The review page of one filing, for its legal representative: drag the seal onto the page
// where it belongs (mouse, touch or pen — pointer events — or the keyboard), optionally add
// the 骑缝章, and seal with the USB-Key: the service prepares the seal at that page and
// position, the extension shows the holder what is sealed and signs, the service finishes
// it and answers the receipt.
//
// Positions are kept in "shown points": points of the page as displayed (after /Rotate),
// origin top-left; each page's <figure> carries its visible box and rotation (from
// GET /filings/{id}/pages), which turn them into PDF user space (origin bottom-left) the way
// eseal.signing.page_geometry.PageBox.to_user does.
"use strict";
(() => {
  const form = document.getElementById("seal-form");
  const seal = document.getElementById("seal");
  if (!form || !seal) return;
  const filingId = Number(document.getElementById("filing").dataset.filingId);
  const figures = [...document.querySelectorAll("#pages figure.page")];
  const tray = document.getElementById("tray");
  const where = document.getElementById("seal-where");
  const sizePt = Number(seal.dataset.sizePt);
  const KEY_STEP = 6, KEY_STEP_FAST = 36;
  let placed = null; // {figure, u, v}: the seal's top-left on that page, in shown points

  const geometry = (figure) => ({
    page: Number(figure.dataset.page),
    width: Number(figure.dataset.widthPt),
    height: Number(figure.dataset.heightPt),
    rotate: Number(figure.dataset.rotate),
    box: figure.dataset.box.split(" ").map(Number),
  });
  const image = (figure) => figure.querySelector("img.page-image");

  // A shown point (u, v from the top-left) of a page -> PDF user space (x, y).
  function toUser(g, u, v) {
    const [x0, y0, x1, y1] = g.box;
    switch (g.rotate) {
      case 90: return [x0 + v, y0 + u];
      case 180: return [x1 - u, y0 + v];
      case 270: return [x1 - v, y1 - u];
      default: return [x0 + u, y1 - v];
    }
  }

  // The seal's lower-left corner in user space (what POST /browser-seal takes as x, y).
  function userPosition() {
    const g = geometry(placed.figure);
    const a = toUser(g, placed.u, placed.v), b = toUser(g, placed.u + sizePt, placed.v + sizePt);
    const round = (n) => Math.round(n * 10) / 10;
    return { page: g.page, x: round(Math.min(a[0], b[0])), y: round(Math.min(a[1], b[1])) };
  }

  function clamp(figure, u, v) {
    const g = geometry(figure);
    return { figure, u: Math.min(Math.max(0, u), Math.max(0, g.width - sizePt)),
             v: Math.min(Math.max(0, v), Math.max(0, g.height - sizePt)) };
  }

  function traySize() {
    const img = image(figures[0]);
    const g = geometry(figures[0]);
    const scale = (img.clientWidth || img.width) / g.width;
    seal.style.width = `${Math.round(sizePt * scale)}px`;
  }

  function describe() {
    if (!placed) {
      where.dataset.placed = "false";
      where.textContent = Web.tr("尚未放置印章", "The seal is not placed yet");
      return;
    }
    const p = userPosition();
    Object.assign(where.dataset, { placed: "true", page: p.page, x: p.x, y: p.y });
    where.textContent = Web.tr(
      `印章在第 ${p.page} 页，左下角距页面左边 ${Math.round(p.x)} pt、底边 ${Math.round(p.y)} pt`,
      `Seal on page ${p.page}, lower-left corner ${Math.round(p.x)} pt from the left and ${Math.round(p.y)} pt from the bottom`);
    document.getElementById("position").value = `${p.page}:${p.x},${p.y}`;
  }

  // Put the seal where `placed` says (as a percentage of the page: it follows resizes).
  function show() {
    const focused = document.activeElement === seal; // moving it in the DOM drops the focus
    seal.style.transform = "";
    seal.classList.remove("dragging");
    if (!placed) {
      seal.classList.remove("placed");
      tray.appendChild(seal);
      traySize();
    } else {
      const g = geometry(placed.figure);
      placed.figure.querySelector(".sheet").appendChild(seal);
      seal.classList.add("placed");
      seal.style.left = `${(placed.u / g.width) * 100}%`;
      seal.style.top = `${(placed.v / g.height) * 100}%`;
      seal.style.width = `${(sizePt / g.width) * 100}%`;
    }
    if (focused) seal.focus({ preventScroll: true });
    describe();
  }

  // --- dragging (pointer events: mouse, touch, pen) ---------------------------------------
  let drag = null;
  seal.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    const rect = seal.getBoundingClientRect();
    drag = { id: event.pointerId, grabX: event.clientX - rect.left, grabY: event.clientY - rect.top,
             dx: 0, dy: 0 };
    seal.setPointerCapture(event.pointerId);
    seal.classList.add("dragging");
    seal.focus({ preventScroll: true });
  });
  seal.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    event.preventDefault();
    // where the seal sits without the drag's shift, whatever scrolled meanwhile
    const rect = seal.getBoundingClientRect();
    const baseLeft = rect.left - drag.dx, baseTop = rect.top - drag.dy;
    drag.dx = event.clientX - drag.grabX - baseLeft;
    drag.dy = event.clientY - drag.grabY - baseTop;
    seal.style.transform = `translate(${drag.dx}px, ${drag.dy}px)`;
    const margin = 40; // near the window's edge: scroll, so a long filing can be crossed
    if (event.clientY < margin) window.scrollBy(0, -12);
    else if (event.clientY > window.innerHeight - margin) window.scrollBy(0, 12);
  });
  function drop(event) {
    if (!drag || event.pointerId !== drag.id) return;
    const rect = seal.getBoundingClientRect();
    drag = null;
    const cx = rect.left + rect.width / 2, cy = rect.top + rect.height / 2;
    const target = figures.find((f) => {
      const r = image(f).getBoundingClientRect();
      return cx >= r.left && cx <= r.right && cy >= r.top && cy <= r.bottom;
    });
    if (target) {
      const r = image(target).getBoundingClientRect();
      const g = geometry(target);
      const ptPerPx = g.width / r.width;
      placed = clamp(target, (cx - r.left) * ptPerPx - sizePt / 2,
                     (cy - r.top) * ptPerPx - sizePt / 2);
    }
    show(); // dropped off every page: back where it was
  }
  seal.addEventListener("pointerup", drop);
  seal.addEventListener("pointercancel", drop);

  // --- the keyboard -----------------------------------------------------------------------
  seal.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? KEY_STEP_FAST : KEY_STEP;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step],
                    ArrowDown: [0, step] };
    let handled = true;
    if (!placed && (event.key in moves || event.key === "Enter" || event.key === " ")) {
      const g = geometry(figures[0]); // first placed at the first page's centre
      placed = clamp(figures[0], (g.width - sizePt) / 2, (g.height - sizePt) / 2);
    } else if (placed && event.key in moves) {
      const [du, dv] = moves[event.key];
      placed = clamp(placed.figure, placed.u + du, placed.v + dv);
    } else if (placed && (event.key === "PageDown" || event.key === "PageUp")) {
      const index = figures.indexOf(placed.figure) + (event.key === "PageDown" ? 1 : -1);
      if (index >= 0 && index < figures.length) {
        placed = clamp(figures[index], placed.u, placed.v);
      }
    } else if (placed && event.key === "Escape") {
      placed = null;
    } else {
      handled = false;
    }
    if (!handled) return;
    event.preventDefault();
    show();
    seal.focus({ preventScroll: true });
    seal.scrollIntoView({ block: "nearest" });
  });

  // --- sealing ----------------------------------------------------------------------------
  const progress = document.getElementById("seal-progress");
  const say = (zh, en) => { progress.hidden = false; progress.textContent = Web.tr(zh, en); };

  function showReceipt(answer) {
    const r = answer.receipt;
    const box = document.getElementById("receipt");
    box.hidden = false;
    box.dataset.sealedSha256 = r.sealed_sha256;
    document.getElementById("receipt-text").textContent = Web.tr(
      `已签章并受理 · ${r.accepted_at.slice(0, 19).replace("T", " ")} · ${r.pades_level} · 回执时间戳序号 ${answer.signature.tsa_serial}`,
      `Sealed and accepted · ${r.accepted_at.slice(0, 19).replace("T", " ")} · ${r.pades_level} · receipt timestamp serial ${answer.signature.tsa_serial}`);
    document.getElementById("receipt-sha").textContent = r.sealed_sha256;
    form.hidden = true;
    seal.remove();
    const dpi = document.getElementById("pages").dataset.dpi;
    figures.forEach((f) => {
      image(f).src = `/filings/${filingId}/pages/${f.dataset.page}.png?which=sealed&dpi=${dpi}`;
    });
    document.getElementById("filing").dataset.status = "accepted";
    box.querySelector("a").focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(form);
    if (!placed) {
      Web.showError({ field: "position", code: "SEAL_NOT_PLACED",
                      message: "drag the seal onto the page first",
                      message_zh: "请先把印章拖到页面上" }, form);
      seal.focus();
      return;
    }
    const button = document.getElementById("seal-button");
    button.disabled = true;
    try {
      const body = { ...userPosition(), size_pt: sizePt,
                     paging_seal: document.getElementById("paging").checked };
      say("正在准备签章…", "Preparing the seal…");
      const prepared = await Web.api("POST", `/filings/${filingId}/browser-seal`, body);
      say("请在 eseal 窗口中核对材料并输入 USB-Key 的 PIN。",
          "Check the filing in the eseal window and type your USB-Key's PIN there.");
      const signed = await window.eseal.sign(prepared);
      say("正在完成签章并生成回执…", "Finishing the seal and the receipt…");
      const answer = await Web.api("POST", `/filings/${filingId}/browser-seal/finish`,
                                   { prepared_id: prepared.id, signature: signed.signature });
      progress.hidden = true;
      showReceipt(answer);
    } catch (error) {
      progress.hidden = true;
      Web.showError(error, form);
    } finally {
      button.disabled = false;
    }
  });

  window.addEventListener("resize", () => { if (!placed) traySize(); });
  if (image(figures[0]).complete) traySize(); else image(figures[0]).addEventListener("load", traySize);
  show();
  // without the extension or its helper, say so (and how to install) before anything else
  window.eseal.status().catch((error) => Web.showError(error, form));
})();
