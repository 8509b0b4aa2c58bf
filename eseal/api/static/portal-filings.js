// The filings list: the upload form. The service is the authority on type, size and content
// (POST /filings answers field-level coded errors); the checks here only say the obvious
// sooner (nothing chosen, a file over the limit) without sending megabytes for nothing.
"use strict";
(() => {
  const form = document.getElementById("upload");
  if (!form) return;
  const fieldError = (field, code, zh, en) => Object.assign(new Error(en),
    { field, code, message: en, message_zh: zh });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Web.clearErrors(form);
    const type = form.elements.type.value;
    const title = form.elements.title.value.trim();
    const file = form.elements.file.files[0];
    const limit = Number(form.dataset.limit), mb = form.dataset.limitMb;
    let problem = null;
    if (!type) problem = fieldError("type", "FILING_TYPE_REQUIRED", "请选择业务类型", "choose the business type");
    else if (!title) problem = fieldError("title", "TITLE_INVALID", "请填写标题", "give the filing a title");
    else if (!file) problem = fieldError("file", "FILE_REQUIRED", "请选择 PDF 文件", "choose the PDF file");
    else if (file.size > limit) problem = fieldError("file", "UPLOAD_TOO_LARGE",
      `文件 ${(file.size / 1048576).toFixed(1)} MB，超过 ${mb} MB 的上限`,
      `the file is ${(file.size / 1048576).toFixed(1)} MB, over the ${mb} MB limit`);
    if (problem) { Web.showError(problem, form); return; }
    const button = document.getElementById("upload-button");
    const progress = document.getElementById("upload-progress");
    button.disabled = true; progress.hidden = false;
    try {
      const query = new URLSearchParams({ title, type });
      const created = await Web.api("POST", `/filings?${query}`, file,
                                    { contentType: "application/pdf" });
      location.assign(`/portal/filings/${created.id}`);
    } catch (error) {
      Web.showError(error, form);
    } finally {
      button.disabled = false; progress.hidden = true;
    }
  });
})();
