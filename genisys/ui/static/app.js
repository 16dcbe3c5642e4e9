// The genisys dashboard (docs/dashboard.md): plain JavaScript, no build step.
//
// Everything shown comes from the API, with the token the operator entered (kept in
// sessionStorage, sent as "Authorization: Bearer"; never in a URL or a cookie). Live
// updates come from the API's watches (Server-Sent Events), read with fetch() so that
// they carry the same header: an EventSource cannot. Text from the API (names,
// messages) is only ever set as textContent, never parsed as markup.
"use strict";

(function () {
  const TOKEN_KEY = "genisys.token";
  const PAGE_SIZE = 50;
  const HOUR_MS = 3600 * 1000;
  const HISTORY_POINTS = 2000;
  const CONDITION_CLASSES = {
    Converged: "ok", Progressing: "busy", Pending: "idle", Unreachable: "bad",
    Error: "bad", ComputeMissing: "warn", Placed: "ok", Rebalancing: "busy",
    Unschedulable: "warn", Deleting: "warn",
  };
  const CONDITION_SIGNS = { ok: "✓", busy: "◐", idle: "○", bad: "✕", warn: "!" };

  // -- the API ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, reason, message, field) {
      super(message);
      this.status = status;
      this.reason = reason;
      this.field = field;
    }
    toString() {
      const where = this.field ? this.field + ": " : "";
      return (this.status ? this.status + " " : "") + this.reason + ": " + where + this.message;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function headers(extra) {
    const all = Object.assign({}, extra || {});
    if (token()) all.Authorization = "Bearer " + token();
    return all;
  }

  async function errorOf(response) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch (e) {
      // not JSON: the status says enough
    }
    return new ApiError(response.status, error.reason || response.statusText || "Error",
                        error.message || "HTTP " + response.status, error.field);
  }

  async function api(method, path, body) {
    const init = { method: method, cache: "no-store",
                   headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "Unreachable", "cannot reach genisys (" + e.message + ")");
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) askForToken(error);
      throw error;
    }
    return { data: await response.json(), headers: response.headers };
  }

  // A watch: GET path (?watch=1) read as Server-Sent Events, picked up again after a
  // drop where it was (Last-Event-ID). onEvent(kind, data) for each message.
  function watch(path, onEvent, { since } = {}) {
    let lastId = since === undefined || since === null ? null : String(since);
    let stopped = false;
    let controller = null;

    async function follow() {
      let failures = 0;
      while (!stopped) {
        controller = new AbortController();
        const extra = { Accept: "text/event-stream" };
        if (lastId !== null) extra["Last-Event-ID"] = lastId;
        try {
          const response = await fetch(path, { headers: headers(extra), cache: "no-store",
                                               signal: controller.signal });
          if (!response.ok) {
            const error = await errorOf(response);
            if (response.status === 401) askForToken(error);
            else showNotice(String(error));
            if (response.status < 500) { setLive("stopped"); return; }
            throw error;
          }
          setLive("live");
          failures = 0;
          const reader = response.body.getReader();
          const decoder = new TextDecoder();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const message = parseMessage(block);
              if (message.data !== null) onEvent(message.event, JSON.parse(message.data));
              if (message.id !== null) lastId = message.id;
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        failures += 1;
        setLive("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * failures, 5000)));
      }
    }
    follow();
    return { stop() { stopped = true; if (controller) controller.abort(); } };
  }

  function parseMessage(block) {
    const message = { event: "message", id: null, data: null };
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") message.event = value;
      else if (field === "id") message.id = value;
    }
    if (data.length) message.data = data.join("\n");
    return message;
  }

  // -- small DOM helpers -------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function showNotice(text) {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  function setLive(state) {
    const live = $("live");
    live.dataset.state = state;
    live.textContent = { live: "● live", reconnecting: "○ reconnecting…", stopped: "○ not live",
                         connecting: "connecting…" }[state];
  }

  function conditionBadge(condition) {
    const kind = CONDITION_CLASSES[condition] || "idle";
    return el("span", { class: "badge " + kind, "data-condition": condition },
              el("span", { class: "sign", "aria-hidden": "true", text: CONDITION_SIGNS[kind] }),
              condition);
  }

  // -- what a service is -------------------------------------------------------------

  function placed(service) {
    return typeof service.replicas === "number";
  }

  function desiredCounts(service) {
    if (!placed(service)) return service.replicas;
    return ((service.status || {}).placement || {}).assignment || {};
  }

  function replicasText(service) {
    if (!placed(service)) {
      const parts = Object.keys(service.replicas).sort().map((c) => c + ": " + service.replicas[c]);
      return parts.length ? parts.join(", ") : "none";
    }
    const placement = service.placement || {};
    let where = "all computes";
    if (placement.computes) where = placement.computes.join(", ");
    else if (placement.selector) where = "selected computes";
    return "total " + service.replicas + " · " + (placement.strategy || "Spread") + " over " + where;
  }

  // One line per compute the service wants or holds resources on: [compute, desired,
  // running (null: never reported), condition, entry]; a service with none yet: one.
  function computeLines(service) {
    const entries = (service.status || {}).computes || {};
    const counts = desiredCounts(service);
    const names = Array.from(new Set(Object.keys(counts).concat(Object.keys(entries)))).sort();
    const lines = names.map((compute) => {
      const entry = entries[compute] || {};
      return { compute: compute, desired: counts[compute] || 0,
               running: entry.running === undefined ? null : entry.running,
               condition: entry.condition || "Pending", entry: entry };
    });
    if (!lines.length) {
      const placement = (service.status || {}).placement || {};
      lines.push({ compute: null, desired: null, running: null,
                   condition: placement.condition || "Pending", entry: {} });
    }
    if (service.deleting) for (const line of lines) line.deleting = true;
    return lines;
  }

  function total(service, field) {
    return computeLines(service).reduce((sum, line) => sum + (line[field] || 0), 0);
  }

  // -- actions (shared by both pages) --------------------------------------------------

  let canWrite = true;

  // + / − / set N on a compute (null: the total of a placed service). report(error or
  // null) shows the answer where the click was.
  async function scale(service, compute, how, number, report) {
    const body = compute === null ? {} : { compute: compute };
    const path = "/service/" + encodeURIComponent(service) + "/";
    try {
      if (how === "set") {
        body.number = number;
        await api("POST", path + "scale", body);
      } else {
        await api("POST", path + (how === "up" ? "upscale" : "downscale"), body);
      }
      report(null);
    } catch (error) {
      report(error);
    }
  }

  function scaleControls(service, compute, report) {
    const label = compute === null ? "the total of " + service : service + " on " + compute;
    const number = el("input", { type: "number", min: "0", class: "count", "aria-label": "count for " + label,
                                 "data-action": "number", disabled: !canWrite });
    const click = (how) => () => {
      if (how === "set" && number.value === "") return;
      scale(service, compute, how, Number(number.value), report);
    };
    return el("span", { class: "scale" },
              compute === null ? el("span", { class: "muted", text: "total" }) : null,
              el("button", { type: "button", class: "step", "data-action": "down", title: "one fewer on " + label,
                             "aria-label": "one fewer on " + label, disabled: !canWrite, onclick: click("down") }, "−"),
              el("button", { type: "button", class: "step", "data-action": "up", title: "one more on " + label,
                             "aria-label": "one more on " + label, disabled: !canWrite, onclick: click("up") }, "+"),
              number,
              el("button", { type: "button", "data-action": "set", disabled: !canWrite, onclick: click("set") }, "Set"));
  }

  // Delete, once confirmed: the button becomes a question with two answers.
  function deleteControl(service, report) {
    const box = el("span", { class: "delete" });
    function ask() {
      box.replaceChildren(
        el("span", { class: "confirm", text: "Delete " + service + "?" }),
        el("button", { type: "button", class: "danger", "data-action": "confirm-delete", disabled: !canWrite,
                       onclick: async () => {
                         try {
                           await api("DELETE", "/service/" + encodeURIComponent(service));
                           report(null);
                         } catch (error) {
                           report(error);
                         }
                         idle();
                       } }, "Yes, delete"),
        el("button", { type: "button", "data-action": "cancel-delete", onclick: idle }, "Cancel"));
    }
    function idle() {
      box.replaceChildren(el("button", { type: "button", class: "quiet", "data-action": "delete",
                                         disabled: !canWrite, onclick: ask }, "Delete"));
    }
    idle();
    return box;
  }

  function applyRole(summary) {
    canWrite = summary.canWrite;
    const who = $("who");
    if (summary.token) {
      who.textContent = summary.token.name + (summary.canWrite ? " (admin)" : " (read-only)");
    } else {
      who.textContent = "no token needed";
    }
    document.body.classList.toggle("read-only", !canWrite);
    for (const control of document.querySelectorAll("[data-action]")) {
      if (control.dataset.action !== "cancel-delete") control.disabled = !canWrite;
    }
  }

  // -- the token -----------------------------------------------------------------------

  function askForToken(error) {
    showNotice(token() ? "The token was refused (" + error.message + "): enter another one above."
                       : "This genisys needs a token: enter it above.");
    $("who").textContent = token() ? "token refused" : "no token";
    $("token-input").focus();
  }

  function setUpTokenForm(restart) {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token-input").value = "";
      showNotice("");
      restart();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      restart();
    });
  }

  // -- the overview ----------------------------------------------------------------------

  function overview() {
    const table = $("services");
    const rows = new Map();   // name -> {tbody, service, error}
    const pages = [""];       // the "after" of each page seen: Previous goes back one
    let pageTotal = 0;
    let hasNext = false;
    let stream = null;
    let summaryTimer = null;

    function query() {
      return $("filter").value.trim().toLowerCase();
    }

    async function refreshSummary() {
      summaryTimer = null;
      try {
        const summary = (await api("GET", "/ui/summary.json")).data;
        applyRole(summary);
        renderComputes(summary.computes);
      } catch (error) {
        if (error.status !== 401) showNotice(String(error));
      }
    }

    function soonRefreshSummary() {
      if (summaryTimer === null) summaryTimer = setTimeout(refreshSummary, 500);
    }

    function renderComputes(computes) {
      const body = $("computes").tBodies[0];
      body.replaceChildren(...computes.map((c) => el("tr", { "data-compute": c.name },
        el("td", { class: "name", text: c.name }),
        el("td", { class: "mono", text: c.connector }),
        el("td", {}, c.health && c.health !== "Unknown"
          ? conditionBadge(c.health === "Ready" ? "Converged" : "Unreachable")
          : el("span", { class: "muted", text: "unknown" })),
        el("td", { class: "num", text: c.services }),
        el("td", { class: "num", text: c.desired }),
        el("td", { class: "num", text: c.running }),
        el("td", { class: "num", text: c.capacity === null ? "—" : c.capacity }),
        // The batch extension: how many services one call may carry ("no": one a call).
        el("td", { class: "num", text: c.batch === null ? "—" : c.batch === 0 ? "no" : c.batch }))));
      // A health badge reads as its condition; say what it means here.
      for (const badge of body.querySelectorAll(".badge")) {
        badge.lastChild.textContent = badge.dataset.condition === "Converged" ? "Ready" : "NotReady";
      }
      if (!computes.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No computes." })));
    }

    function serviceRow(name) {
      const row = rows.get(name);
      const service = row.service;
      const lines = computeLines(service);
      const report = (error) => {
        row.error = error;
        renderError(row);
      };
      const trs = lines.map((line, i) => {
        const perCompute = !placed(service) && line.compute !== null;
        const condition = line.deleting ? conditionBadge("Deleting") : conditionBadge(line.condition);
        return el("tr", { "data-service": name, "data-compute": line.compute || "" },
          el("td", { class: "name" }, i === 0 ? el("a", { href: "/ui/service/" + encodeURIComponent(name), text: name }) : ""),
          el("td", { class: "muted" }, i === 0 ? replicasText(service) : ""),
          el("td", { text: line.compute || "—" }),
          el("td", { class: "num", "data-field": "desired", text: line.desired === null ? "—" : line.desired }),
          el("td", { class: "num", "data-field": "running", text: line.running === null ? "—" : line.running }),
          el("td", { "data-field": "condition" }, condition),
          el("td", {}, perCompute ? scaleControls(name, line.compute, report)
            : (placed(service) && i === 0 ? scaleControls(name, null, report) : "")),
          el("td", {}, i === 0 ? deleteControl(name, report) : ""));
      });
      trs.push(el("tr", { class: "error-row", hidden: true },
                  el("td", { colspan: "8" }, el("span", { class: "error", role: "alert" }))));
      return trs;
    }

    function renderError(row) {
      const errorRow = row.tbody.querySelector(".error-row");
      errorRow.hidden = !row.error;
      errorRow.querySelector(".error").textContent = row.error ? String(row.error) : "";
    }

    // A service whose rows are the same computes is updated cell by cell (an input
    // being typed into stays as it is); otherwise its own rows are built again.
    function update(service) {
      const row = rows.get(service.name);
      const before = computeLines(row.service).map((l) => l.compute).join(",");
      const shape = replicasText(row.service) + (row.service.deleting ? "!" : "");
      row.service = service;
      const lines = computeLines(service);
      if (before !== lines.map((l) => l.compute).join(",")
          || shape !== replicasText(service) + (service.deleting ? "!" : "")) {
        row.tbody.replaceChildren(...serviceRow(service.name));
        renderError(row);
        return;
      }
      lines.forEach((line, i) => {
        const tr = row.tbody.rows[i];
        setText(tr.querySelector('[data-field="desired"]'), line.desired === null ? "—" : line.desired);
        setText(tr.querySelector('[data-field="running"]'), line.running === null ? "—" : line.running);
        const cell = tr.querySelector('[data-field="condition"]');
        const condition = line.deleting ? "Deleting" : line.condition;
        if (cell.firstChild.dataset.condition !== condition) cell.replaceChildren(conditionBadge(condition));
      });
    }

    function setText(node, value) {
      if (node.textContent !== String(value)) node.textContent = value;
    }

    function insert(service) {
      const tbody = el("tbody", { "data-service": service.name });
      rows.set(service.name, { tbody: tbody, service: service, error: null });
      tbody.append(...serviceRow(service.name));
      const after = Array.from(rows.keys()).filter((n) => n > service.name).sort()[0];
      table.insertBefore(tbody, after ? rows.get(after).tbody : null);
      $("no-services").hidden = true;
    }

    function remove(name) {
      const row = rows.get(name);
      if (!row) return;
      row.tbody.remove();
      rows.delete(name);
      $("no-services").hidden = rows.size > 0;
    }

    function onEvent(kind, data) {
      if (kind === "ADDED" || kind === "MODIFIED") {
        // The watch sends this page's range of names only: a new one belongs here.
        if (rows.has(data.name)) update(data);
        else insert(data);
        if (kind === "ADDED") pageTotal += 1;
      } else if (kind === "DELETED") {
        remove(data.name);
        pageTotal = Math.max(0, pageTotal - 1);
      } else if (kind === "RESET") {
        load();
        return;
      }
      showCount();
      soonRefreshSummary();
    }

    function showCount() {
      $("service-count").textContent = "(" + pageTotal + (query() ? " matching" : "") + ")";
    }

    async function load() {
      if (stream) stream.stop();
      const after = pages[pages.length - 1];
      const params = new URLSearchParams({ limit: String(PAGE_SIZE + 1) });
      if (query()) params.set("q", query());
      if (after) params.set("after", after);
      let answer;
      try {
        answer = await api("GET", "/service?" + params);
      } catch (error) {
        if (error.status !== 401) showNotice(String(error));
        setLive("stopped");
        return;
      }
      showNotice("");
      const names = Object.keys(answer.data).sort();
      hasNext = names.length > PAGE_SIZE;
      for (const name of Array.from(rows.keys())) remove(name);
      for (const name of names.slice(0, PAGE_SIZE)) insert(answer.data[name]);
      pageTotal = Number(answer.headers.get("Genisys-Total") || names.length);
      $("no-services").hidden = rows.size > 0;
      $("prev-page").disabled = pages.length === 1;
      $("next-page").disabled = !hasNext;
      const first = (pages.length - 1) * PAGE_SIZE;
      $("page-info").textContent = rows.size ? (first + 1) + "–" + (first + rows.size) + " of " + pageTotal : "";
      showCount();
      // The watch follows this page's range of names only: with 10,000 services
      // changing, it carries what the page shows, not everything.
      const watchParams = new URLSearchParams({ watch: "1" });
      if (query()) watchParams.set("q", query());
      if (after) watchParams.set("after", after);
      if (hasNext) watchParams.set("before", names[PAGE_SIZE]);
      stream = watch("/service?" + watchParams, onEvent,
                     { since: answer.headers.get("Genisys-Revision") });
    }

    function restart() {
      refreshSummary();
      load();
    }

    let filterTimer = null;
    $("filter").addEventListener("input", () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(() => { pages.length = 1; load(); }, 250);
    });
    $("filter-form").addEventListener("submit", (event) => event.preventDefault());
    $("next-page").addEventListener("click", () => {
      pages.push(Array.from(rows.keys()).sort().pop());
      load();
    });
    $("prev-page").addEventListener("click", () => {
      if (pages.length > 1) pages.pop();
      load();
    });
    setUpTokenForm(restart);
    restart();
  }

  // -- a service's page ---------------------------------------------------------------------

  function servicePage() {
    const name = document.body.dataset.service;
    const history = [];   // {t, desired, running}: the last hour, in memory
    let current = null;
    let stream = null;

    function report(error) {
      const box = $("service-error");
      box.hidden = !error;
      box.textContent = error ? String(error) : "";
    }

    function renderSpec(service) {
      const spec = $("spec");
      const items = [["Replicas", replicasText(service)]];
      if (placed(service)) {
        const placement = service.placement || {};
        items.push(["Strategy", placement.strategy || "Spread"]);
        if (placement.computes) items.push(["Computes", placement.computes.join(", ")]);
        if (placement.selector) items.push(["Selector", JSON.stringify(placement.selector)]);
        if (placement.maxSurge !== undefined) items.push(["maxSurge", placement.maxSurge]);
      }
      const labels = Object.entries(service.labels || {}).map(([k, v]) => k + "=" + v).join(", ");
      items.push(["Labels", labels || "none"], ["Generation", service.generation],
                 ["Observed", (service.status || {}).observedGeneration],
                 ["resourceVersion", service.resourceVersion], ["Created", service.created || "—"]);
      spec.replaceChildren(...items.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]));
      if (placed(service)) {
        spec.append(el("dt", { text: "Scale total" }), el("dd", {}, scaleControls(name, null, report)));
      }
      $("service-state").textContent = service.deleting ? "being deleted" : "";
    }

    function renderStatus(service) {
      const placement = (service.status || {}).placement;
      const line = $("placement");
      line.replaceChildren();
      if (placement) line.append(conditionBadge(placement.condition), " ", placement.message);
      const body = $("status").tBodies[0];
      const lines = computeLines(service).filter((l) => l.compute !== null);
      body.replaceChildren(...lines.map((l) => el("tr", { "data-compute": l.compute },
        el("td", { class: "name", text: l.compute }),
        el("td", { class: "num", "data-field": "desired", text: l.desired }),
        el("td", { class: "num", "data-field": "running", text: l.running === null ? "—" : l.running }),
        el("td", { "data-field": "condition" }, conditionBadge(l.deleting ? "Deleting" : l.condition)),
        el("td", { text: l.entry.reason || "" }),
        el("td", { class: "message", "data-field": "message", text: l.entry.message || "" }),
        el("td", { class: "muted", text: (l.entry.lastTransitionTime || "").replace("T", " ").replace("Z", "") }),
        el("td", {}, placed(service) ? "" : scaleControls(name, l.compute, report)))));
      if (!lines.length) body.append(el("tr", {}, el("td", { colspan: "8", class: "muted", text: "Nothing placed yet." })));
    }

    function renderEvents(events) {
      const list = $("events");
      list.replaceChildren(...(events || []).map((e) => el("li", { class: "event " + e.type.toLowerCase() },
        el("time", { text: e.time.replace("T", " ").replace("Z", "") }),
        el("span", { class: "badge " + (e.type === "Warning" ? "warn" : "idle"), text: e.type }),
        el("strong", { text: e.reason }),
        el("span", { class: "muted", text: "on " + e.compute + (e.count > 1 ? " ×" + e.count : "") }),
        el("span", { class: "message", text: e.message }))));
      $("no-events").hidden = (events || []).length > 0;
    }

    // The history outlives a reload or a visit to another page (sessionStorage, this
    // tab only), bounded by the hour and by HISTORY_POINTS.
    const historyKey = "genisys.history." + name;
    try {
      history.push(...JSON.parse(sessionStorage.getItem(historyKey) || "[]"));
    } catch (e) {
      sessionStorage.removeItem(historyKey);
    }

    function record(service) {
      const now = Date.now();
      const point = { t: now, desired: total(service, "desired"), running: total(service, "running") };
      const last = history[history.length - 1];
      // A point equal to the last one only moves time on: the line is drawn to now.
      if (!last || last.desired !== point.desired || last.running !== point.running) history.push(point);
      // The last point older than the hour stays: it says where the line starts.
      while (history.length > 1 && history[1].t < now - HOUR_MS) history.shift();
      if (history.length > HISTORY_POINTS) history.splice(0, history.length - HISTORY_POINTS);
      sessionStorage.setItem(historyKey, JSON.stringify(history));
      drawChart();
    }

    // Two step lines over the last hour: desired (dashed) and running.
    function drawChart() {
      const NS = "http://www.w3.org/2000/svg";
      const width = 560, height = 170, left = 34, bottom = 22, top = 8;
      const now = Date.now();
      // The last hour, or what this tab has seen of it (with a margin, 5 s at least):
      // a page opened a minute ago has its changes spread out, not squeezed at "now".
      const seen = history.length ? now - history[0].t : 0;
      const span = Math.min(HOUR_MS, Math.max(5000, seen * 1.15));
      const start = now - span;
      const most = Math.max(1, ...history.map((p) => Math.max(p.desired, p.running)));
      const x = (t) => left + (width - left - 6) * (Math.max(t, start) - start) / span;
      const y = (v) => top + (height - top - bottom) * (1 - v / most);
      const svg = document.createElementNS(NS, "svg");
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "desired and running over the last hour");
      const add = (tag, attributes, text) => {
        const node = document.createElementNS(NS, tag);
        for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
        if (text !== undefined) node.textContent = text;
        svg.append(node);
        return node;
      };
      const ticks = most <= 4 ? Array.from({ length: most + 1 }, (_, i) => i) : [0, Math.round(most / 2), most];
      for (const v of ticks) {
        add("line", { x1: left, x2: width - 6, y1: y(v), y2: y(v), class: "grid-line" });
        add("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v));
      }
      const clock = (t) => new Date(t).toTimeString().slice(0, 8);
      for (const [t, anchor] of [[start, "start"], [start + span / 2, "middle"], [now, "end"]]) {
        add("text", { x: x(t), y: height - 6, class: "axis", "text-anchor": anchor },
            t === now ? "now" : clock(t));
      }
      // Running first, desired (dashed) over it: where they agree, both stay visible.
      for (const field of ["running", "desired"]) {
        if (!history.length) break;
        let points = "";
        let last = null;
        for (const p of history) {
          if (last !== null) points += x(p.t) + "," + y(last) + " ";
          points += x(p.t) + "," + y(p[field]) + " ";
          last = p[field];
        }
        points += x(now) + "," + y(last);
        add("polyline", { points: points, class: "series " + field });
        const first = history[0];
        add("circle", { cx: x(first.t), cy: y(first[field]), r: 3, class: "dot " + field });
      }
      $("chart").replaceChildren(svg);
    }

    function onEvent(kind, data) {
      if (kind === "SERVICE") {
        current = data;
        renderSpec(data);
        renderStatus(data);
        renderEvents(data.events);
        record(data);
      } else if (kind === "DELETED") {
        $("service-state").textContent = "deleted";
        showNotice("Service " + name + " is gone.");
        stream.stop();
        setLive("stopped");
      }
    }

    function restart() {
      if (stream) stream.stop();
      api("GET", "/ui/summary.json").then((answer) => {
        applyRole(answer.data);
        if (current) {
          renderSpec(current);
          renderStatus(current);
        }
      }).catch((error) => { if (error.status !== 401) showNotice(String(error)); });
      stream = watch("/service/" + encodeURIComponent(name) + "?watch=1", onEvent);
    }

    $("delete-box").append(deleteControl(name, report));
    setUpTokenForm(restart);
    // The chart moves with time even when the service does not.
    setInterval(() => { if (current) record(current); }, 10000);
    drawChart();
    restart();
  }

  document.addEventListener("DOMContentLoaded", () => {
    setLive("connecting");
    if (document.body.dataset.page === "overview") overview();
    else servicePage();
  });
})();
