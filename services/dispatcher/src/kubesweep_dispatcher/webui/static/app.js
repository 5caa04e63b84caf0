// kubesweep web UI: overview, charts and trial table of one experiment, kept live by the
// API's Server-Sent-Events stream (read with fetch, because EventSource cannot send the
// Authorization header). The token comes once in the URL fragment (#token=...) or from
// the sign-in dialog and is kept in sessionStorage; it never goes into a URL.
"use strict";

(() => {
  const TOKEN_KEY = "kubesweep.token";
  const ENDED_EXPERIMENT = new Set(["DONE", "STOPPED", "ERROR"]);
  const ACTIVE_TRIAL = new Set(["WAITING", "RUNNING"]);
  const ENDED_TRIAL = new Set(["SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"]);
  const TRIAL_STATUSES = ["WAITING", "RUNNING", ...ENDED_TRIAL];
  const PRIMARY_FIRST = ["local-0", "master-0", "chief-0", "worker-0"];
  // More rows than this make the page sluggish; search and filter narrow the rest.
  const MAX_ROWS = 500;
  const Charts = window.KSCharts;

  const state = {
    expId: null,
    exp: null,
    trials: [],
    intermediates: new Map(), // trial id -> Map(sequence -> value)
    lastEventId: "0-0",
    stream: null,
    highlight: null,
  };

  const $ = (selector) => document.querySelector(selector);

  // ---------------------------------------------------------------- token and API calls

  function takeTokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  let loginShown = false;
  function askToken() {
    if (loginShown) return;
    loginShown = true;
    setLive(false);
    const dialog = $("#login");
    if (!dialog.open) dialog.showModal();
  }

  async function api(method, path, body) {
    const init = { method, headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(`/api/v1${path}`, init);
    if (response.status === 401) {
      askToken();
      throw new ApiError(401, "this API needs its token");
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.message || response.statusText, error.field);
    }
    return data;
  }

  const expPath = (suffix) => `/experiments/${encodeURIComponent(state.expId)}${suffix || ""}`;

  // ---------------------------------------------------------------- helpers

  function banner(message, isError) {
    const node = $("#banner");
    node.hidden = !message;
    node.textContent = message || "";
    node.classList.toggle("error", Boolean(isError));
  }

  function setLive(on, label) {
    const node = $("#live");
    node.classList.toggle("on", on);
    node.classList.toggle("off", !on);
    node.textContent = on ? label || "live" : "offline";
  }

  function metricOf(value) {
    if (typeof value === "number") return Number.isFinite(value) ? value : null;
    if (value && typeof value === "object") return metricOf(value.default);
    return null;
  }

  function seconds(total) {
    if (total === null || total === undefined) return "–";
    const s = Math.max(0, Math.round(total));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = s % 60;
    if (h) return `${h}h ${m}m ${rest}s`;
    if (m) return `${m}m ${rest}s`;
    return `${rest}s`;
  }

  // The largest NNI duration unit that divides the value: 1800 -> 30m, 5400 -> 90m.
  function durationText(total) {
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (total >= size && Number.isInteger(total / size)) return `${total / size}${unit}`;
    }
    return `${Math.round(total)}s`;
  }

  function trialDuration(trial) {
    const start = trial.started || trial.launched;
    if (!start) return null;
    return (trial.ended || Date.now() / 1000) - start;
  }

  function compactParams(params) {
    return Object.entries(params || {})
      .map(([key, value]) => {
        if (typeof value === "number" && !Number.isInteger(value)) return `${key}=${Charts.fmt(value)}`;
        return `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
      })
      .join(" ");
  }

  function node(tag, props, children) {
    const el = document.createElement(tag);
    Object.assign(el, props || {});
    for (const child of children || []) el.append(child);
    return el;
  }

  // ---------------------------------------------------------------- loading

  async function loadExperiments() {
    const { experiments } = await api("GET", "/experiments");
    const picker = $("#experiment-picker");
    picker.replaceChildren(
      ...experiments.map((e) => node("option", { value: e.id, textContent: `${e.name || "(unnamed)"} · ${e.id} · ${e.status}` })),
    );
    return experiments;
  }

  async function start() {
    takeTokenFromFragment();
    bindControls();
    const page = location.pathname.startsWith("/detail") ? "detail" : "oview";
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
    let experiments;
    try {
      experiments = await loadExperiments();
    } catch (error) {
      if (error.status !== 401) banner(`Cannot load experiments: ${error.message}`, true);
      return;
    }
    const wanted = new URLSearchParams(location.search).get("id");
    const chosen =
      experiments.find((e) => e.id === wanted) ||
      experiments.find((e) => !ENDED_EXPERIMENT.has(e.status)) ||
      experiments[0];
    if (!chosen) {
      banner("No experiments yet. Submit one with: kubesweep create --config <config.yml>");
      return;
    }
    if (page === "detail") setTimeout(() => $("#charts").scrollIntoView(), 0);
    select(chosen.id);
    if (wanted && wanted !== chosen.id) banner(`There is no experiment ${wanted}; showing ${chosen.id}.`);
  }

  // A hidden tab needs no live stream, and each open stream holds an API thread.
  function onVisibility() {
    if (!state.expId) return;
    if (document.hidden) {
      if (state.stream) state.stream.abort();
      state.stream = null;
      setLive(false);
    } else if (!state.stream) {
      refreshSoon(0);
      followEvents(state.expId);
    }
  }

  function select(expId) {
    if (state.stream) state.stream.abort();
    state.expId = expId;
    state.exp = null;
    state.trials = [];
    state.intermediates = new Map();
    state.lastEventId = "0-0";
    rowCache.clear();
    $("#trial-table tbody").replaceChildren();
    $("#experiment-picker").value = expId;
    const params = new URLSearchParams(location.search);
    params.set("id", expId);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    for (const input of document.querySelectorAll(".edit input")) input.dataset.dirty = "";
    refreshSoon(0);
    followEvents(expId);
  }

  async function fetchTrials() {
    const all = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await api("GET", expPath(`/trials?offset=${offset}&limit=1000`));
      all.push(...page.trials);
      if (all.length >= page.total || !page.trials.length) return all;
    }
  }

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;

  function refreshSoon(delay) {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      if (refreshing) {
        refreshAgain = true;
        return;
      }
      refreshing = true;
      try {
        await refresh();
      } catch (error) {
        if (error.status !== 401) banner(`Refresh failed: ${error.message}`, true);
      } finally {
        refreshing = false;
        if (refreshAgain) {
          refreshAgain = false;
          refreshSoon(300);
        }
      }
    }, delay === undefined ? 300 : delay);
  }

  async function refresh() {
    const expId = state.expId;
    if (!expId) return;
    const [exp, trials] = await Promise.all([api("GET", expPath()), fetchTrials()]);
    if (expId !== state.expId) return;
    state.exp = exp;
    state.trials = trials;
    if ($("#banner").classList.contains("error")) banner("");  // recovered
    renderOverview();
    renderTable();
    renderCharts();
  }

  // ---------------------------------------------------------------- live events

  async function followEvents(expId) {
    const control = new AbortController();
    state.stream = control;
    let backoff = 500;
    let follow = true;
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    while (!control.signal.aborted && expId === state.expId) {
      try {
        const url = `/api/v1/experiments/${encodeURIComponent(expId)}/events?after=${encodeURIComponent(state.lastEventId)}${follow ? "" : "&follow=false"}`;
        const response = await fetch(url, {
          headers: authHeaders({ Accept: "text/event-stream" }),
          signal: control.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          askToken();
          return;
        }
        if (response.status === 503 && follow) {
          // Every followed-stream slot of the API is taken: poll until one frees up.
          follow = false;
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setLive(true, follow ? "live" : "polling");
        backoff = 500;
        await readEvents(response.body, expId);
        if (!follow) {
          await sleep(2000);
          follow = true;
          continue;
        }
      } catch (error) {
        if (control.signal.aborted) return;
      }
      setLive(false);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  async function readEvents(body, expId) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || expId !== state.expId) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        handleBlock(block);
      }
    }
  }

  function handleBlock(block) {
    let id = null;
    let type = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (id) state.lastEventId = id;
    if (!data.length) return;
    let event;
    try {
      event = JSON.parse(data.join("\n"));
    } catch (error) {
      return;
    }
    if (type === "metric.intermediate" && event.trial_id) {
      const series = state.intermediates.get(event.trial_id) || new Map();
      const value = metricOf(event.payload.value);
      const sequence = Number.isInteger(event.payload.sequence) ? event.payload.sequence : series.size;
      if (value !== null) series.set(sequence, value);
      state.intermediates.set(event.trial_id, series);
    }
    refreshSoon();
  }

  // ---------------------------------------------------------------- rendering

  function renderOverview() {
    const exp = state.exp;
    $("#exp-name").textContent = exp.name || "(unnamed)";
    $("#exp-id").textContent = exp.id;
    const status = $("#exp-status");
    status.textContent = exp.status;
    status.className = `badge ${exp.status}`;
    $("#exp-platform").textContent = exp.platform || "–";
    $("#exp-started").textContent = new Date(exp.created * 1000).toLocaleString();
    const best = $("#exp-best");
    if (exp.pareto_front) {
      // Multi-objective: no single best, the trade-off front instead.
      const names = (exp.objectives || []).map((o) => `${o.name} (${o.direction})`).join(", ");
      best.textContent = `Pareto front: ${exp.pareto_front.length} trials ★ on ${names}`;
    } else if (exp.best) {
      best.replaceChildren(
        `${Charts.fmt(exp.best.value)} `,
        node("a", { href: `#trial-${exp.best.trial_id}`, textContent: `(${exp.best.trial_id})`, onclick: () => highlight(exp.best.trial_id) }),
        node("span", { className: "muted", textContent: ` ${exp.optimize_mode}` }),
      );
    } else {
      best.textContent = "–";
    }
    $("#exp-message").textContent = exp.message || "";
    const ended = ENDED_EXPERIMENT.has(exp.status);
    $("#stop-experiment").disabled = ended || exp.status === "STOPPING";
    $("#resume-experiment").disabled = !ended;

    const elapsed = (exp.ended || Date.now() / 1000) - exp.created;
    $("#exp-elapsed").textContent = seconds(elapsed);
    $("#exp-max-duration").textContent = exp.max_experiment_duration ? `of ${seconds(exp.max_experiment_duration)}` : "no limit";
    $("#duration-bar").style.width = exp.max_experiment_duration
      ? `${Math.min(100, (100 * elapsed) / exp.max_experiment_duration)}%`
      : ended ? "100%" : "0%";

    const counts = exp.trial_counts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const done = Object.entries(counts).filter(([k]) => ENDED_TRIAL.has(k)).reduce((a, [, v]) => a + v, 0);
    $("#trials-done").textContent = String(done);
    $("#trials-max").textContent = exp.max_trial_number ? String(exp.max_trial_number) : `${total} (no limit)`;
    $("#trials-bar").style.width = exp.max_trial_number ? `${Math.min(100, (100 * done) / exp.max_trial_number)}%` : "0%";
    $("#trial-counts").replaceChildren(
      ...TRIAL_STATUSES.filter((s) => counts[s]).map((s) =>
        node("li", {}, [node("span", { className: `badge ${s}`, textContent: `${s} ${counts[s]}` })]),
      ),
    );
    fillEdit("#edit-concurrency", exp.trial_concurrency);
    fillEdit("#edit-max-trials", exp.max_trial_number);
    fillEdit("#edit-duration", exp.max_experiment_duration ? durationText(exp.max_experiment_duration) : "");
  }

  function fillEdit(selector, value) {
    const input = $(selector);
    // Never overwrite what the user is typing.
    if (document.activeElement === input || input.dataset.dirty) return;
    input.value = value === null || value === undefined ? "" : String(value);
  }

  function visibleTrials() {
    const query = $("#trial-search").value.trim().toLowerCase();
    const status = $("#status-filter").value;
    let rows = state.trials.filter((t) => !status || t.status === status);
    if (query) {
      rows = rows.filter((t) =>
        [t.id, t.status, String(t.seq), compactParams(t.parameters), JSON.stringify(t.parameters), String(t.default_metric ?? "")]
          .join(" ")
          .toLowerCase()
          .includes(query),
      );
    }
    if ($("#trial-sort").value === "metric") {
      const sign = state.exp && state.exp.optimize_mode === "maximize" ? -1 : 1;
      rows = rows.slice().sort((a, b) => {
        if (a.default_metric === null || a.default_metric === undefined) return 1;
        if (b.default_metric === null || b.default_metric === undefined) return -1;
        return sign * (a.default_metric - b.default_metric);
      });
    } else {
      rows = rows.slice().sort((a, b) => b.seq - a.seq);
    }
    return rows;
  }

  // Rows are kept and patched in place: a table rebuilt on every event would detach the
  // Kill button under the pointer and drop the user's text selection.
  const rowCache = new Map(); // trial id -> tr

  function renderTable() {
    const matching = visibleTrials();
    const rows = matching.slice(0, MAX_ROWS);
    const total = matching.length;
    const bestId = state.exp && state.exp.best ? state.exp.best.trial_id : null;
    const body = $("#trial-table tbody");
    const wanted = new Set(rows.map((t) => t.id));
    for (const [id, row] of rowCache) {
      if (!wanted.has(id) || !state.trials.some((t) => t.id === id)) {
        row.remove();
        rowCache.delete(id);
      }
    }
    rows.forEach((trial, index) => {
      let row = rowCache.get(trial.id);
      if (!row) {
        row = trialRow(trial);
        rowCache.set(trial.id, row);
      }
      patchRow(row, trial, trial.id === bestId);
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
    });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    $("#trial-shown").textContent = total > MAX_ROWS
      ? `first ${MAX_ROWS} of ${total} matching (${state.trials.length} trials); search or filter to see others`
      : `${total} of ${state.trials.length} trials`;
  }

  function trialRow(trial) {
    const row = node("tr", { id: `trial-${trial.id}` });
    row.dataset.trialId = trial.id;
    const logs = ["stdout", "stderr", "trial.log"].map((stream) =>
      node("a", { href: "#", textContent: stream, className: `log-${stream.replace(".", "-")}`, onclick: (e) => { e.preventDefault(); openLog(trial, stream); } }),
    );
    row.append(
      node("td", { textContent: String(trial.seq) }),
      node("td", { className: "mono" }),
      node("td", {}, [node("span", { className: "badge" })]),
      node("td", { className: "metric" }),
      node("td"),
      node("td"),
      node("td", { className: "params", textContent: compactParams(trial.parameters) }),
      node("td", { className: "storage" }),
      node("td", { className: "logs" }, logs),
      node("td", { className: "action" }),
    );
    return row;
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function patchRow(row, trial, isBest) {
    const cells = row.children;
    const front = state.exp && state.exp.pareto_front
      ? state.exp.pareto_front.some((p) => p.trial_id === trial.id)
      : false;
    row.dataset.status = trial.status;
    row.classList.toggle("best-row", isBest);
    row.classList.toggle("highlight", state.highlight === trial.id);
    setText(cells[1], front ? `${trial.id} ★` : trial.id);
    cells[1].title = front ? "on the Pareto front" : "";
    const badge = cells[2].firstChild;
    setText(badge, trial.status);
    badge.className = `badge ${trial.status}`;
    badge.title = trial.message || "";
    const metric = trial.default_metric === null || trial.default_metric === undefined ? "" : Charts.fmt(trial.default_metric);
    setText(cells[3], metric);
    setText(cells[4], trial.intermediate_count
      ? `${trial.intermediate_count} (last ${Charts.fmt(metricOf(trial.last_intermediate))})`
      : "");
    const duration = trialDuration(trial);
    setText(cells[5], duration === null ? "" : seconds(duration));
    if (cells[7].dataset.url !== (trial.storage_url || "")) {
      cells[7].dataset.url = trial.storage_url || "";
      const url = trial.storage_url || "";
      cells[7].replaceChildren(/^https?:/.test(url)
        ? node("a", { href: url, textContent: url, target: "_blank", rel: "noopener noreferrer" })
        : url);
    }
    const button = cells[9].querySelector("button.kill");
    if (ACTIVE_TRIAL.has(trial.status) && !button) {
      cells[9].append(node("button", { type: "button", className: "danger kill", textContent: "Kill", onclick: () => killTrial(trial) }));
    } else if (!ACTIVE_TRIAL.has(trial.status) && button) {
      button.remove();
    }
  }

  function highlight(trialId) {
    state.highlight = trialId;
    renderTable();
  }

  function renderCharts() {
    const exp = state.exp;
    const maximize = exp.optimize_mode === "maximize";
    const scored = state.trials
      .filter((t) => t.default_metric !== null && t.default_metric !== undefined)
      .sort((a, b) => a.seq - b.seq);
    const bestId = exp.best ? exp.best.trial_id : null;
    Charts.scatter(
      $("#chart-metric"),
      scored.map((t) => ({
        x: t.seq, y: t.default_metric, id: t.id,
        color: t.id === bestId ? "#f0a202" : Charts.palette[0],
        title: `#${t.seq} ${t.id}: ${Charts.fmt(t.default_metric)}\n${compactParams(t.parameters)}`,
      })),
      { xLabel: "trial #", yLabel: "default metric", emptyText: "No final results yet" },
    );
    let bestSoFar = null;
    const curve = scored.map((t) => {
      if (bestSoFar === null || (maximize ? t.default_metric > bestSoFar : t.default_metric < bestSoFar)) bestSoFar = t.default_metric;
      return [t.seq, bestSoFar];
    });
    const steps = curve.flatMap((p, i) => (i ? [[p[0], curve[i - 1][1]], p] : [p]));
    Charts.scatter(
      $("#chart-best"),
      curve.map(([x, y]) => ({ x, y, color: "#e4572e", title: `after #${x}: ${Charts.fmt(y)}` })),
      { xLabel: "trial #", yLabel: `best (${exp.optimize_mode})`, line: steps, radius: 3, emptyText: "No final results yet" },
    );
    const bySeq = new Map(state.trials.map((t) => [t.id, t]));
    const series = [...state.intermediates.entries()]
      .filter(([id]) => bySeq.has(id))
      .sort((a, b) => bySeq.get(a[0]).seq - bySeq.get(b[0]).seq)
      .map(([id, points]) => ({
        name: `#${bySeq.get(id).seq} ${id}`,
        points: [...points.entries()].sort((a, b) => a[0] - b[0]),
      }));
    Charts.lines($("#chart-intermediate"), series, { xLabel: "step", yLabel: "intermediate result", emptyText: "No intermediate results yet" });
    renderParallel(maximize);
  }

  function renderParallel(maximize) {
    const trials = state.trials;
    const names = [...new Set(trials.flatMap((t) => Object.keys(t.parameters || {})))].sort();
    const dims = names.map((name) => {
      const values = trials.map((t) => (t.parameters || {})[name]).filter((v) => v !== undefined);
      const numeric = values.every((v) => typeof v === "number");
      const kind = (((state.exp.spec || {}).search_space || {})[name] || {})._type || "";
      return numeric
        ? { name, kind: "num", log: kind.endsWith("loguniform") || kind.endsWith("lognormal") }
        : { name, kind: "cat", categories: [...new Set(values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))))].sort() };
    });
    const metrics = trials.map((t) => t.default_metric).filter((v) => v !== null && v !== undefined);
    const lo = Math.min(...metrics);
    const hi = Math.max(...metrics);
    if (metrics.length) dims.push({ name: "metric", kind: "num" });
    const rows = trials.map((t) => {
      const values = names.map((name, i) => {
        const v = (t.parameters || {})[name];
        if (v === undefined) return null;
        return dims[i].kind === "num" ? v : typeof v === "string" ? v : JSON.stringify(v);
      });
      const m = t.default_metric;
      if (metrics.length) values.push(m === null || m === undefined ? null : m);
      let score = null;
      if (m !== null && m !== undefined) {
        score = hi > lo ? (m - lo) / (hi - lo) : 1;
        if (!maximize) score = 1 - score;
      }
      return { values, score, title: `#${t.seq} ${t.id}: ${compactParams(t.parameters)}` };
    });
    Charts.parallel($("#chart-params"), dims, rows, { emptyText: "No trials yet" });
  }

  // ---------------------------------------------------------------- actions

  async function openLog(trial, stream) {
    const dialog = $("#log-view");
    $("#log-title").textContent = `${trial.id} · ${stream}`;
    $("#log-text").textContent = "loading…";
    if (!dialog.open) dialog.showModal();
    try {
      const base = expPath(`/trials/${encodeURIComponent(trial.id)}`);
      const listing = await api("GET", `${base}/files?path=output`);
      const folders = listing.entries.filter((e) => e.is_dir).map((e) => e.name);
      folders.sort((a, b) => (PRIMARY_FIRST.includes(a) ? 0 : 1) - (PRIMARY_FIRST.includes(b) ? 0 : 1) || a.localeCompare(b));
      if (!folders.length) throw new ApiError(404, "the trial has written no output yet");
      const text = await api("GET", `${base}/files/output/${encodeURIComponent(folders[0])}/${stream}`);
      $("#log-title").textContent = `${trial.id} · ${folders[0]}/${stream}`;
      $("#log-text").textContent = text || "(empty)";
    } catch (error) {
      $("#log-text").textContent = `Cannot read ${stream}: ${error.message}`;
    }
  }

  async function killTrial(trial) {
    if (!window.confirm(`Kill trial ${trial.id}?`)) return;
    try {
      await api("POST", expPath(`/trials/${encodeURIComponent(trial.id)}/cancel`));
    } catch (error) {
      banner(`Cannot kill ${trial.id}: ${error.message}`, true);
    }
    refreshSoon(0);
  }

  async function saveEdit(form) {
    const field = form.dataset.field;
    const input = form.querySelector("input");
    const note = form.querySelector(".field-error");
    note.className = "field-error";
    note.textContent = "";
    const raw = input.value.trim();
    let value = raw;
    if (field !== "max_experiment_duration" || /^\d+(\.\d+)?$/.test(raw)) value = Number(raw);
    try {
      await api("PATCH", expPath(), { [field]: value });
      input.dataset.dirty = "";
      note.className = "field-ok";
      note.textContent = "saved";
      setTimeout(() => { if (note.textContent === "saved") note.textContent = ""; }, 2500);
    } catch (error) {
      note.textContent = error.message;
    }
    refreshSoon(0);
  }

  async function experimentAction(action) {
    try {
      await api("POST", expPath(`/${action}`));
      await loadExperiments();
      $("#experiment-picker").value = state.expId;
    } catch (error) {
      banner(`Cannot ${action}: ${error.message}`, true);
    }
    refreshSoon(0);
  }

  function bindControls() {
    const filter = $("#status-filter");
    for (const status of TRIAL_STATUSES) filter.append(node("option", { value: status, textContent: status }));
    filter.addEventListener("change", renderTable);
    $("#trial-search").addEventListener("input", renderTable);
    $("#trial-sort").addEventListener("change", renderTable);
    $("#experiment-picker").addEventListener("change", (e) => select(e.target.value));
    for (const form of document.querySelectorAll("form.edit")) {
      form.querySelector("input").addEventListener("input", (e) => { e.target.dataset.dirty = "1"; });
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        saveEdit(form);
      });
    }
    $("#stop-experiment").addEventListener("click", () => experimentAction("stop"));
    $("#resume-experiment").addEventListener("click", () => experimentAction("resume"));
    $("#log-close").addEventListener("click", () => $("#log-view").close());
    $("#forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    $("#login-form").addEventListener("submit", () => {
      sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
      $("#token-input").value = "";
      location.reload();
    });
    // Durations and elapsed time move on between events.
    setInterval(() => {
      if (state.exp && !ENDED_EXPERIMENT.has(state.exp.status)) {
        renderOverview();
      }
    }, 1000);
    document.addEventListener("visibilitychange", onVisibility);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.exp && renderCharts(), 200);
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
