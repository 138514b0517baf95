/* Feldspar's page: ask a collection, watch the answer stream, read the cited passages,
   see the guard's flags, upload documents, list collections.
   Plain JavaScript, no libraries. Text from the server only ever goes into the page
   through textContent (never innerHTML), so nothing it sends can become markup. */
"use strict";

(function () {
  const KEY_STORE = "feldspar.apiKey";
  const NAME = /^[\w.-]{1,64}$/;
  const MARKERS = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const keyDialog = $("key-dialog");
  const askForm = $("ask-form");
  const askSelect = $("ask-collection");
  const answerBox = $("answer");
  const passageBody = $("passage-body");
  const uploadStatus = $("upload-status");

  /* A DOM element: el("p", {class: "x"}, "text", child, ...). Strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(node, ...children) {
    node.replaceChildren();
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const basename = (path) => String(path || "").split(/[\\/]/).pop() || String(path || "");
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  /* ---- The API key -------------------------------------------------------------- */

  class Unauthorized extends Error {}

  class APIError extends Error {
    constructor(status, error) {
      super((error && error.message) || `The server answered ${status}`);
      this.status = status;
      this.code = error && error.code;
    }
  }

  function apiKey() {
    try { return localStorage.getItem(KEY_STORE) || ""; } catch (e) { return ""; }
  }

  function askForKey(message) {
    const error = $("key-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("key-input").value = "";
    if (!keyDialog.open) keyDialog.showModal();
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    try { localStorage.setItem(KEY_STORE, key); } catch (e) { /* private mode: keep going */ }
    keyDialog.close();
    loadCollections();
  });
  keyDialog.addEventListener("cancel", (event) => { if (!apiKey()) event.preventDefault(); });
  $("change-key").addEventListener("click", () => askForKey(""));

  function headers(extra) {
    return Object.assign({ Authorization: `Bearer ${apiKey()}` }, extra || {});
  }

  async function errorOf(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    return new APIError(response.status, body && body.error);
  }

  function refused() {
    askForKey("The server did not accept this key. Check it and enter it again.");
    return new Unauthorized("The API key was refused");
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = headers(opts.headers);
    const response = await fetch(path, opts);
    if (response.status === 401) throw refused();
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /* ---- Health --------------------------------------------------------------------- */

  async function checkHealth() {
    const box = $("health");
    let state = "down", text = "Server unreachable";
    try {
      const response = await fetch("/health", { cache: "no-store" });
      if (response.ok) { state = "ok"; text = "Server ready"; }
      else if (response.status === 503) { state = "loading"; text = "Model loading…"; }
      else text = `Server answered ${response.status}`;
    } catch (e) { /* unreachable */ }
    box.dataset.state = state;
    $("health-text").textContent = text;
    setTimeout(checkHealth, state === "ok" ? 15000 : 3000);
  }

  /* ---- Collections ---------------------------------------------------------------- */

  let collections = [];

  async function loadCollections(select) {
    const box = $("collections");
    try {
      const body = await (await api("/api/collections")).json();
      collections = body.data || [];
    } catch (error) {
      if (!(error instanceof Unauthorized)) fill(box, el("p", { class: "error" }, error.message));
      return;
    }
    const names = collections.map((c) => c.name);
    const wanted = [select, askSelect.value, app.dataset.collection]
      .find((n) => n && names.includes(n)) || names[0] || app.dataset.collection;
    if (wanted && !names.includes(wanted)) names.unshift(wanted);
    fill(askSelect, names.map((n) => el("option", { value: n }, n)));
    askSelect.value = wanted || names[0] || "";
    fill($("collection-names"), collections.map((c) => el("option", { value: c.name })));
    if (!collections.length) {
      fill(box, el("p", { class: "placeholder" },
        "No collections yet: add documents to make one."));
      return;
    }
    const rows = collections.map((c) => el("tr", {},
      el("th", { scope: "row" },
        el("button", { type: "button", class: "link", "aria-label": `Documents of ${c.name}`,
          onclick: () => showDocuments(c.name) }, c.name),
        el("span", { class: "sub muted" }, `${c.embed_model}` +
          (c.created_at ? ` · ${new Date(c.created_at * 1000).toLocaleDateString()}` : ""))),
      el("td", { class: "num" }, c.documents),
      el("td", { class: "num" }, c.chunks),
      el("td", { class: "row-actions" },
        el("button", { type: "button", class: "quiet", "aria-label": `Ask ${c.name}`,
          onclick: () => { askSelect.value = c.name; $("question").focus(); } }, "Ask"))));
    fill(box, el("div", { class: "table-wrap" }, el("table", {},
      el("caption", { class: "visually-hidden" }, "Collections"),
      el("thead", {}, el("tr", {},
        ["Name", "Documents", "Chunks", ""].map((h, i) =>
          el("th", { scope: "col", class: i === 1 || i === 2 ? "num" : null },
            h || el("span", { class: "visually-hidden" }, "Actions"))))),
      el("tbody", {}, rows))));
  }

  async function showDocuments(name) {
    const box = $("documents");
    fill(box, el("p", { class: "placeholder" }, `Loading the documents of ${name}…`));
    let docs;
    try {
      docs = (await (await api(`/api/collections/${encodeURIComponent(name)}/documents`))
        .json()).data || [];
    } catch (error) {
      fill(box, error instanceof Unauthorized ? [] : el("p", { class: "error" }, error.message));
      return;
    }
    fill(box, el("h3", {}, `Documents in ${name}`),
      docs.length ? el("ul", { class: "documents" }, docs.map((d) => el("li", {},
        el("span", { class: "doc-name", title: d.path }, basename(d.path)),
        el("span", { class: "muted" },
          ` · ${plural(d.chunks || 0, "chunk")}${d.type ? " · " + d.type : ""}`))))
        : el("p", { class: "placeholder" }, "No documents."));
  }

  $("refresh-collections").addEventListener("click", () => loadCollections());

  /* ---- Upload --------------------------------------------------------------------- */

  function uploadReport(report) {
    const count = (list) => (list || []).length;
    const parts = [`Added ${count(report.added)}`, `updated ${count(report.updated)}`,
      `unchanged ${count(report.unchanged)}`];
    if (count(report.skipped)) parts.push(`skipped ${count(report.skipped)}`);
    const seconds = typeof report.seconds === "number" ? ` in ${report.seconds.toFixed(1)} s` : "";
    const items = [el("p", { class: "success" },
      `${parts.join(", ")} in “${report.collection}”: ${plural(report.chunks || 0, "chunk")}` +
      ` indexed${seconds}.`)];
    if (count(report.skipped)) {
      items.push(el("ul", { class: "skipped" }, report.skipped.map((s) =>
        el("li", {}, el("strong", {}, basename(s.path)), `: ${s.reason}`))));
    }
    const flagged = Object.entries(report.flagged || {});
    if (flagged.length) {
      items.push(el("p", {}, "The guard flagged passages: ",
        flagged.map(([risk, n]) => el("span", { class: "badge warn" }, `${risk} ${n}`))));
    }
    return items;
  }

  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("upload-collection").value.trim();
    const files = $("upload-files").files;
    if (!NAME.test(name)) {
      fill(uploadStatus, el("p", { class: "error" },
        "Use 1 to 64 letters, digits, “.”, “-” or “_” for the collection name."));
      $("upload-collection").focus();
      return;
    }
    if (!files.length) {
      fill(uploadStatus, el("p", { class: "error" }, "Choose one or more files."));
      return;
    }
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    const bar = el("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
    const label = el("span", {}, `Uploading ${plural(files.length, "file")}…`);
    fill(uploadStatus, el("div", { class: "progress" }, bar, label));
    const button = $("upload-button");
    button.disabled = true;

    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/collections/${encodeURIComponent(name)}/documents`);
    xhr.setRequestHeader("Authorization", `Bearer ${apiKey()}`);
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((100 * e.loaded) / e.total);
      bar.value = percent;
      label.textContent = `Uploading… ${percent}%`;
    };
    xhr.upload.onload = () => {
      bar.removeAttribute("value"); // indeterminate while the server indexes
      label.textContent = "Indexing…";
    };
    xhr.onload = () => {
      button.disabled = false;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 401) { fill(uploadStatus); refused(); return; }
      if (xhr.status < 200 || xhr.status >= 300) {
        fill(uploadStatus, el("p", { class: "error" }, new APIError(xhr.status,
          body && body.error).message));
        return;
      }
      fill(uploadStatus, uploadReport(body || {}));
      $("upload-files").value = "";
      loadCollections(name);
    };
    xhr.onerror = () => {
      button.disabled = false;
      fill(uploadStatus, el("p", { class: "error" }, "The upload failed: network error."));
    };
    xhr.send(form);
  });

  /* ---- Asking --------------------------------------------------------------------- */

  let asking = null; // the AbortController of the question being answered

  /* The server-sent events of a response: calls onEvent(data) for each, until [DONE]. */
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        const frames = buffer.split(/\r?\n\r?\n/);
        buffer = done ? "" : frames.pop();
        for (const frame of frames) {
          const data = frame.split(/\r?\n/).filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (!data) continue;
          if (data === "[DONE]") return;
          onEvent(JSON.parse(data));
        }
        if (done) return;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function setAsking(on) {
    $("ask-button").disabled = on;
    $("stop-button").hidden = !on;
    answerBox.setAttribute("aria-busy", on ? "true" : "false");
  }

  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    const collection = askSelect.value;
    if (!question || asking) return;
    const controller = new AbortController();
    asking = controller;
    setAsking(true);
    answerBox.dataset.state = "waiting";
    const draft = el("p", { class: "draft", id: "draft" });
    const waiting = el("p", { class: "waiting" }, el("span", { class: "spinner", "aria-hidden": "true" }),
      "Searching the documents and writing the answer…");
    fill(answerBox, waiting, draft);
    let finished = false, streamed = false;
    try {
      const response = await api("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ question, collection, stream: true }),
        signal: controller.signal,
      });
      await readEvents(response, (data) => {
        streamed = true;
        if (data.error) throw new APIError(500, data.error);
        if (data.type === "delta") {
          answerBox.dataset.state = "streaming";
          waiting.remove();
          draft.append(document.createTextNode(data.text || ""));
        } else if (data.type === "answer") {
          finished = true;
          showAnswer(data.answer || {});
        }
      });
      if (!finished) throw new Error("The answer ended before it was complete.");
    } catch (error) {
      if (error instanceof Unauthorized) {
        showProblem("The API key was refused; enter it and ask again.");
      } else if (error.name === "AbortError") {
        showProblem("Stopped.", draft.textContent);
      } else if (error.code === "content_filter" && !streamed) {
        answerBox.dataset.state = "blocked";
        fill(answerBox, el("div", { class: "notice blocked", role: "alert" },
          el("strong", {}, "Blocked by the guard. "), error.message,
          el("p", { class: "hint" }, "Rephrase the question without the flagged content, " +
            "or ask whoever runs Feldspar to look the decision up in the audit log.")));
      } else {
        showProblem(error.message, draft.textContent);
      }
    } finally {
      asking = null;
      setAsking(false);
    }
  });

  $("stop-button").addEventListener("click", () => { if (asking) asking.abort(); });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) askForm.requestSubmit();
  });

  function showProblem(message, partial) {
    answerBox.dataset.state = "error";
    fill(answerBox, el("p", { class: "error", role: "alert" }, message),
      partial ? el("p", { class: "draft stopped" }, partial) : null);
  }

  function guardBadges(guard) {
    const badges = [];
    for (const direction of ["input", "output"]) {
      const result = guard && guard[direction];
      if (!result) continue;
      const what = direction === "input" ? "Question" : "Answer";
      const flagged = (result.verdicts || []).filter((v) => v.flagged);
      if (!flagged.length && result.action === "allow") {
        badges.push(el("li", { class: "badge ok" }, `${what}: no flags`));
      }
      for (const v of flagged) {
        badges.push(el("li", { class: "badge warn", title: `score ${Number(v.score).toFixed(2)}` +
          (v.detector ? ` (${v.detector})` : "") }, `${what}: ${v.risk}`));
      }
      if (result.action === "redact" || result.action === "block") {
        badges.push(el("li", { class: "badge bad" },
          `${what}: ${result.action === "redact" ? "redacted" : "blocked"}`));
      }
    }
    return badges.length ? el("ul", { class: "badges", "aria-label": "The guard's checks" }, badges)
      : null;
  }

  /* The answer's text with each [n] as a button that opens the passage it cites. */
  function answerText(answer, open) {
    const text = String(answer.text || "");
    const spansIndex = !answer.abstained;
    const sentenceAt = (pos) => (answer.sentences || []).findIndex((s) =>
      spansIndex && s.start <= pos && pos < s.end);
    const node = el("p", { class: "answer-text" });
    let last = 0;
    for (const match of text.matchAll(MARKERS)) {
      // The word before the marker stays on the marker's line.
      const before = text.slice(last, match.index);
      const word = before.match(/(\S*)\s*$/);
      node.append(before.slice(0, word.index));
      const sentence = sentenceAt(match.index);
      const numbers = match[1].split(",").map((n) => Number(n.trim()));
      const group = el("span", { class: "cites" }, word[1]);
      numbers.forEach((n) => {
        const citation = (answer.citations || []).find((c) => c.marker === n &&
          c.sentence === sentence) || (answer.citations || []).find((c) => c.marker === n);
        const source = (answer.sources || []).find((s) => s.marker === n);
        group.append(source ? el("button", { type: "button", class: "cite",
          "aria-label": `Show source ${n}: ${basename(source.path)}`,
          onclick: (e) => open(source, citation, e.currentTarget) }, String(n))
          : el("span", { class: "cite-missing" }, `[${n}]`));
      });
      node.append(group);
      last = match.index + match[0].length;
    }
    node.append(text.slice(last));
    return node;
  }

  function showAnswer(answer) {
    answerBox.dataset.state = "done";
    const open = (source, citation, button) => {
      for (const b of answerBox.querySelectorAll("[aria-pressed]")) b.setAttribute("aria-pressed", "false");
      if (button) button.setAttribute("aria-pressed", "true");
      showPassage(source, citation);
    };
    const parts = [guardBadges(answer.guard)];
    if (answer.abstained) {
      parts.push(el("p", { class: "notice abstained", role: "status" },
        el("strong", {}, "Abstained: "), answer.reason || "no reason given",
        ". The documents may not answer this; read the sources below."));
    }
    parts.push(answerText(answer, open));
    if (answer.abstained && answer.draft && answer.draft.trim() !== String(answer.text).trim()) {
      parts.push(el("details", { class: "draft-details" },
        el("summary", {}, "What the model wrote (not supported by the sources)"),
        el("p", { class: "draft" }, answer.draft)));
    }
    const sources = answer.sources || [];
    if (sources.length) {
      const cited = new Set((answer.citations || []).map((c) => c.marker));
      parts.push(el("h3", { class: "sources-title" }, "Sources"),
        el("ol", { class: "sources" }, sources.map((s) => {
          const citation = (answer.citations || []).find((c) => c.marker === s.marker);
          return el("li", {}, el("button", { type: "button", class: "source",
            "aria-pressed": "false", onclick: (e) => open(s, citation, e.currentTarget) },
          el("span", { class: "marker" }, `[${s.marker}]`),
          el("span", { class: "source-name" }, basename(s.path)),
          el("span", { class: "muted" }, where(s)),
          cited.has(s.marker) ? el("span", { class: "badge ok" }, "cited") : null));
        })));
    }
    const meta = [answer.model];
    if (answer.timings && typeof answer.timings.total_s === "number") {
      meta.push(`${answer.timings.total_s.toFixed(1)} s`);
    }
    if (answer.usage && answer.usage.total_tokens) meta.push(`${answer.usage.total_tokens} tokens`);
    parts.push(el("p", { class: "meta muted" }, meta.filter(Boolean).join(" · ")));
    fill(answerBox, parts);
  }

  function where(source) {
    const bits = [];
    if (source.page !== null && source.page !== undefined) bits.push(`page ${source.page}`);
    if (source.lines && source.lines.length === 2) {
      bits.push(source.lines[0] === source.lines[1] ? `line ${source.lines[0]}`
        : `lines ${source.lines[0]}–${source.lines[1]}`);
    }
    return bits.length ? ` · ${bits.join(", ")}` : "";
  }

  /* Where the quote lies in the source's text: found in it, else from the spans. */
  function quoteRange(source, citation) {
    const text = String(source.text || "");
    if (!citation || !citation.quote) return null;
    const at = text.indexOf(citation.quote);
    if (at >= 0) return [at, at + citation.quote.length];
    if (citation.span && source.span) {
      const start = citation.span[0] - source.span[0], end = citation.span[1] - source.span[0];
      if (start >= 0 && end <= text.length && start < end) return [start, end];
    }
    return null;
  }

  function showPassage(source, citation) {
    const text = String(source.text || "");
    const range = quoteRange(source, citation);
    const passage = el("blockquote", { class: "passage-text" });
    let mark = null;
    if (range) {
      mark = el("mark", {}, text.slice(range[0], range[1]));
      passage.append(text.slice(0, range[0]), mark, text.slice(range[1]));
    } else {
      passage.append(text);
    }
    const headings = (source.headings || []).filter(Boolean);
    fill(passageBody,
      el("p", { class: "passage-source" }, el("span", { class: "marker" }, `[${source.marker}] `),
        el("strong", {}, basename(source.path)), el("span", { class: "muted" }, where(source))),
      el("p", { class: "path muted" }, source.path),
      headings.length ? el("p", { class: "headings muted" }, headings.join(" › ")) : null,
      citation ? el("p", { class: "support" },
        `Supports sentence ${citation.sentence + 1} of the answer` +
        (typeof citation.support === "number" ? ` (${Math.round(citation.support * 100)}%)` : "") +
        (citation.origin === "attributed" ? "; found by Feldspar's check" : "") + ".") : null,
      passage);
    const panel = $("passage");
    panel.focus({ preventScroll: true });
    if (mark) mark.scrollIntoView({ block: "nearest" });
    panel.scrollIntoView({ block: "nearest" });
  }

  /* ---- Start ------------------------------------------------------------------------ */

  checkHealth();
  if (apiKey()) loadCollections();
  else askForKey("");
})();
