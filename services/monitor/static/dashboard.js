// The dashboard: polls /admin/api/overview and updates numbers, tables and charts in place.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const refreshMs = Number(document.body.dataset.refreshMs) || 5000;
  const METRICS = [["queue_wait", "Queue wait"], ["processing", "Processing"], ["end_to_end", "End to end"]];
  const WINDOWS = ["1m", "5m", "1h"];
  const STATUSES = ["queued", "processing", "succeeded", "failed", "canceled"];
  const state = { latest: null, tab: "overview", jobsCursor: null };

  // ---- formatting -------------------------------------------------------------------------
  const dash = "—";
  const count = (n) => (n === null || n === undefined ? dash : String(n));
  const rate = (r) => (r === null || r === undefined ? dash : `${(r * 100).toFixed(1)}%`);
  function seconds(s) {
    if (s === null || s === undefined) return dash;
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    return `${(s / 60).toFixed(1)} min`;
  }
  // Shorter, for table cells that hold three of them.
  function compact(s) {
    if (s === null || s === undefined) return dash;
    if (s < 1) return `${Math.round(s * 1000)}ms`;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
    return `${(s / 60).toFixed(1)}m`;
  }
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : dash);
  const stamp = (iso) => (iso ? new Date(iso).toLocaleString() : dash);
  const big = (n) => (n === null || n === undefined ? dash : Math.round(n).toLocaleString("en-US"));

  // ---- DOM helpers: text only, never HTML, since messages and errors come from outside ------
  function setField(name, text) {
    for (const node of document.querySelectorAll(`[data-field="${name}"]`)) node.textContent = text;
  }
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function pill(text) {
    const span = document.createElement("span");
    span.className = `status ${text}`;
    span.textContent = text;
    return span;
  }
  function fill(tableId, rows) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren(...rows);
  }
  function row(...cells) {
    const tr = document.createElement("tr");
    for (const c of cells) tr.append(c instanceof Node ? c : cell(String(c)));
    return tr;
  }
  function withNode(node) {
    const td = document.createElement("td");
    td.append(node);
    return td;
  }
  function emptyRow(span, text) {
    const td = cell(text, "hint");
    td.colSpan = span;
    return row(td);
  }

  async function fetchJson(url, options = {}) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    return body;
  }
  const post = (url, body) => fetchJson(url, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf, ...(body ? { "Content-Type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });

  // ---- overview -----------------------------------------------------------------------------
  function renderHealth(data) {
    const health = document.getElementById("health");
    health.className = `health ${data.status}`;
    health.dataset.status = data.status;
    setField("status", data.status);
    setField("updated", clock(data.checked_at));
    const reasons = document.getElementById("reasons");
    reasons.hidden = !data.reasons.length;
    reasons.textContent = data.reasons.join(" · ");
  }

  function renderCounts(data) {
    for (const status of STATUSES) setField(`jobs.${status}`, count(data.jobs[status]));
    setField("windows.1h.success_rate", rate(data.windows["1h"].success_rate));
    setField("windows.5m.throughput_per_min", data.windows["5m"].throughput_per_min.toFixed(2));
    setField("workers.estimated_active", count(data.workers.estimated_active));
    setField("workers.heartbeating", count(data.workers.heartbeating));
    setField("workers.broker_consumers", count(data.workers.broker_consumers));
    setField("queues.depth", count(data.queues.depth));
    setField("queues.source", data.queues.source);
  }

  function renderLatency(data) {
    const tier = document.getElementById("tier").value;
    fill("latency-table", METRICS.map(([metric, label]) => row(label, ...WINDOWS.map((w) => {
      const p = data.windows[w].latency[metric][tier];
      const td = cell(`${compact(p.p50)} · ${compact(p.p95)} · ${compact(p.p99)}`, "num triple");
      const n = document.createElement("span");
      n.className = "count";
      n.textContent = `n=${p.count}`;
      td.append(n);
      return td;
    }))));
  }

  function renderRates(data) {
    const w = (f) => WINDOWS.map((name) => cell(f(data.windows[name]), "num"));
    fill("rates-table", [
      row("Finished jobs", ...w((s) => count(s.succeeded + s.failed))),
      row("Success rate", ...w((s) => rate(s.success_rate))),
      row("Failure rate", ...w((s) => rate(s.failure_rate))),
      row("Error rate (incl. retries)", ...w((s) => rate(s.error_rate))),
      row("Throughput / min", ...w((s) => s.throughput_per_min.toFixed(2))),
      row("Queued", ...w((s) => count(s.queued))),
    ]);
    const errors = Object.entries(data.windows["1h"].errors_by_code);
    const list = document.getElementById("errors");
    list.replaceChildren(...(errors.length ? errors : [[null, null]]).map(([code, n]) => {
      const li = document.createElement("li");
      if (code === null) { li.className = "none"; li.textContent = "no errors"; } else li.textContent = `${code} × ${n}`;
      return li;
    }));
  }

  function renderWorkers(data) {
    const workers = data.workers.list;
    fill("workers-table", workers.length ? workers.map((w) => row(
      cell(w.worker_id, "mono"), w.host, withNode(pill(w.status)), clock(w.started_at),
      `${w.seconds_since_seen.toFixed(1)} s ago`,
      cell(count(w.in_flight), "num"), cell(count(w.processed), "num"), cell(count(w.failed), "num"),
    )) : [emptyRow(8, "no worker has sent a heartbeat in the last hour")]);
  }

  function renderApi(data) {
    const api = data.api;
    setField("api.active", count(api.active));
    const windows = api.windows;
    const w = (f) => WINDOWS.map((name) => cell(windows[name] ? f(windows[name]) : dash, "num"));
    fill("api-table", [
      row("Requests / min", ...w((s) => s.requests_per_min.toFixed(1))),
      row("Error rate (5xx)", ...w((s) => rate(s.error_rate))),
      row("Client errors (4xx)", ...w((s) => rate(s.client_error_rate))),
      row("P50 · P95 · P99", ...w((s) => `${compact(s.latency.p50)} · ${compact(s.latency.p95)} · ${compact(s.latency.p99)}`)),
    ]);
    const routes = windows["5m"] ? Object.entries(windows["5m"].routes) : [];
    fill("routes-table", routes.length ? routes.map(([route, r]) => row(
      cell(route, "mono"), cell(count(r.requests), "num"), cell(count(r.server_errors), "num"),
      cell(count(r.client_errors), "num"),
      cell(`${compact(r.latency.p50)} · ${compact(r.latency.p95)} · ${compact(r.latency.p99)}`, "num triple"),
    )) : [emptyRow(5, "no requests reported in the last 5 minutes")]);
  }

  const megabytes = (b) => (b === null || b === undefined ? dash : `${Math.round(b / 1048576)} MB`);

  function memoryCell(bytes, growing) {
    const td = cell(megabytes(bytes), growing ? "num hot" : "num");
    if (growing) td.title = "memory keeps growing";
    td.dataset.growing = String(Boolean(growing));
    return td;
  }

  function renderProcesses(data) {
    const apis = data.api.instances.map((i) => row(
      cell(i.instance_id, "mono"), "api", withNode(pill(i.status)), cell(seconds(i.cpu_seconds), "num"),
      memoryCell(i.rss_bytes, i.memory_growing), cell(dash, "num"),
    ));
    const workers = data.workers.list.map((w) => row(
      cell(w.worker_id, "mono"), "worker", withNode(pill(w.status)), cell(seconds(w.cpu_seconds), "num"),
      memoryCell(w.rss_bytes, w.memory_growing), cell(rate(w.saturation), "num"),
    ));
    const all = [...apis, ...workers];
    fill("processes-table", all.length ? all : [emptyRow(6, "no heartbeat in the last hour")]);
  }

  function renderQueues(data) {
    fill("queues-table", data.queues.list.map((q) => row(
      cell(q.name, "mono"), q.kind, cell(q.messages === null ? "missing" : count(q.messages), "num"),
      cell(count(q.consumers), "num"),
    )));
  }

  function renderAlerts(data) {
    const active = data.alerts.active;
    const badge = document.querySelector('[data-field="alerts.count"]');
    badge.textContent = String(active.length);
    badge.classList.toggle("hot", active.length > 0);
    const list = document.getElementById("active-alerts");
    list.replaceChildren(...(active.length ? active.map((a) => {
      const li = document.createElement("li");
      li.append(pill(a.severity), ` ${a.rule}: ${a.summary} (since ${clock(a.since)})`);
      return li;
    }) : [Object.assign(document.createElement("li"), { className: "none", textContent: "No alerts firing." })]));
  }

  function renderBudget(data) {
    const b = data.budget;
    if (!b) return;
    setField("budget.jobs_per_month", big(b.jobs_per_month));
    setField("budget.requests_per_month", big(b.requests_per_month));
    setField("budget.sample_rate", `${b.sample_rate}`);
    setField("budget.spans_per_month", big(b.spans_per_month));
    setField("budget.free_spans", big(b.free_spans));
    setField("budget.advised_sample_rate", `${b.advised_sample_rate}`);
    setField("budget.advice", b.advice);
    const bar = document.getElementById("budget-bar");
    bar.className = b.status;
    bar.style.width = `${Math.min(b.share_of_free * 100, 100)}%`;
  }

  // Amounts arrive as decimal strings (exact); shown to the cent.
  const usd = (v) => (v === null || v === undefined ? dash : `$${Number(v).toFixed(2)}`);

  function renderSpend(data) {
    const s = data.spend;
    if (!s) return;
    setField("spend.today", usd(s.today_usd));
    setField("spend.month", usd(s.month_usd));
    setField("spend.budget", s.daily_budget_usd === null ? "no cap" : usd(s.daily_budget_usd));
    setField("spend.share", s.share_of_budget === null ? "no cap" : rate(s.share_of_budget));
    const bar = document.getElementById("spend-bar");
    bar.className = s.status;
    bar.style.width = `${s.share_of_budget === null ? 0 : Math.min(s.share_of_budget * 100, 100)}%`;
  }

  async function loadFlagged() {
    const page = await fetchJson("/admin/jobs/flagged");
    fill("flagged-table", page.jobs.length ? page.jobs.map((j) => row(
      cell(j.id.slice(0, 8), "mono"), withNode(pill(j.status)),
      cell(j.structure_score === null ? dash : j.structure_score.toFixed(2), "num"), j.engine || dash, j.tier,
      stamp(j.updated_at),
    )) : [emptyRow(6, "no flagged jobs")]);
  }

  function renderCharts(data) {
    const points = data.series;
    Charts.bars(document.getElementById("throughput-chart"), points,
      [["succeeded", "ok"], ["failed", "bad"]], (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
    Charts.lines(document.getElementById("latency-chart"), points, [["p95", "p95"], ["p50", "p50"]], seconds);
  }

  function render(data) {
    state.latest = data;
    renderHealth(data);
    renderCounts(data);
    renderLatency(data);
    renderRates(data);
    renderWorkers(data);
    renderApi(data);
    renderProcesses(data);
    renderQueues(data);
    renderAlerts(data);
    renderBudget(data);
    renderSpend(data);
    setField("flagged.count", count(data.flagged_jobs));
    renderCharts(data);
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  }

  async function refresh() {
    try {
      render(await fetchJson("/admin/api/overview"));
      if (state.tab === "overview") await loadFlagged();
      document.getElementById("offline").hidden = true;
      if (state.tab === "jobs" && state.jobsCursor === null) await loadJobs(false);
    } catch (error) {
      document.getElementById("offline").hidden = false;
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  // ---- jobs -----------------------------------------------------------------------------------
  const jobLink = (id) => Object.assign(document.createElement("a"),
    { href: `#jobs/${id}`, className: "mono", textContent: id.slice(0, 8) });

  async function loadJobs(more) {
    const params = new URLSearchParams({ limit: "25" });
    const status = document.getElementById("job-status").value, tier = document.getElementById("job-tier").value;
    if (status) params.set("status", status);
    if (tier) params.set("tier", tier);
    if (more && state.nextCursor) params.set("cursor", state.nextCursor);
    const page = await fetchJson(`/admin/jobs?${params}`);
    const rows = page.jobs.map((j) => row(
      withNode(jobLink(j.id)), j.tier, j.style, withNode(pill(j.status)), cell(count(j.attempts), "num"),
      stamp(j.created_at), cell(seconds(j.queue_wait_s), "num"), cell(seconds(j.total_s), "num"), j.error_code || "",
    ));
    const body = document.querySelector("#jobs-table tbody");
    if (more) body.append(...rows); else body.replaceChildren(...(rows.length ? rows : [emptyRow(9, "no jobs")]));
    state.jobsCursor = more ? state.nextCursor : null;
    state.nextCursor = page.next_cursor;
    document.getElementById("jobs-more").hidden = !page.next_cursor;
  }

  // ---- one job: its timeline, attempts, trace, and the operator's retry and cancel ------------
  const took = (a) => (a.ended_at ? (Date.parse(a.ended_at) - Date.parse(a.started_at)) / 1000 : null);

  function renderJob(data) {
    const j = data.job;
    setField("job.id", j.id);
    setField("job.owner", j.owner);
    setField("job.kind", `${j.tier} · ${j.style}`);
    setField("job.prompt", j.prompt);
    setField("job.asset", j.asset_id);
    setField("job.error", j.error_code ? `${j.error_code}: ${j.error_message || ""}` : dash);
    document.getElementById("job-state").replaceChildren(pill(j.status));
    const trace = document.getElementById("job-trace");
    if (j.trace_url) {
      trace.replaceChildren(Object.assign(document.createElement("a"),
        { href: j.trace_url, textContent: j.trace_id, target: "_blank", rel: "noopener noreferrer" }));
    } else trace.textContent = j.trace_id || dash;
    fill("job-timeline", data.timeline.map((e) => row(stamp(e.at), e.type,
      `${e.from_status || dash} → ${e.to_status || dash}`, cell(JSON.stringify(e.details), "mono preview"))));
    const attempts = data.timings.attempts;
    fill("job-attempts", attempts.length ? attempts.map((a) => row(cell(count(a.number), "num"),
      cell(a.worker_id || dash, "mono"), stamp(a.started_at), stamp(a.ended_at), cell(seconds(took(a)), "num"),
      a.outcome ? withNode(pill(a.outcome)) : "running", a.error_code || "")) : [emptyRow(7, "no attempt yet")]);
    document.getElementById("job-retry").hidden = !data.actions.retry;
    document.getElementById("job-cancel").hidden = !data.actions.cancel;
  }

  async function loadJob(id) {
    document.getElementById("job-panel").hidden = false;
    document.getElementById("job-result").textContent = "";
    state.jobId = id;
    try { renderJob(await fetchJson(`/admin/jobs/${encodeURIComponent(id)}`)); }
    catch (error) { document.getElementById("job-result").textContent = `failed: ${error.message}`; }
  }

  async function jobAction(action, done) {
    const result = document.getElementById("job-result");
    try { done(await post(`/admin/jobs/${encodeURIComponent(state.jobId)}/${action}`)); }
    catch (error) { result.textContent = `failed: ${error.message}`; }
  }

  document.getElementById("job-retry").addEventListener("click", () => jobAction("retry", (r) => {
    location.hash = `#jobs/${r.job.id}`;  // the new job, whose first event names the failed one
  }));
  document.getElementById("job-cancel").addEventListener("click", () => {
    if (!confirm("Cancel this queued job? Its owner sees it canceled.")) return;
    jobAction("cancel", async () => { await loadJob(state.jobId); await loadJobs(false); });
  });

  // ---- queues and dead letters ----------------------------------------------------------------
  function deadRow(m) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Re-queue";
    button.disabled = !m.origin;
    button.addEventListener("click", () => act(`/admin/queues/dead-letters/${encodeURIComponent(m.key)}/requeue`,
      (r) => `re-queued ${r.requeued.key} to ${r.requeued.origin}`));
    return row(stamp(m.dead_lettered_at), m.event_type || "?", m.reason, cell(m.origin || "unknown", "mono"),
      cell(count(m.attempts), "num"), cell(m.preview, "mono preview"), withNode(button));
  }

  async function loadDead() {
    const data = await fetchJson("/admin/queues");
    setField("dead.total", count(data.dead_letters.total));
    setField("dead.shown", count(data.dead_letters.shown));
    const messages = data.dead_letters.messages;
    fill("dead-table", messages.length ? messages.map(deadRow) : [emptyRow(7, "the dead-letter queue is empty")]);
  }

  async function act(url, describe) {
    const result = document.getElementById("dead-result");
    try {
      result.textContent = describe(await post(url));
    } catch (error) {
      result.textContent = `failed: ${error.message}`;
    }
    await loadDead();
  }

  // ---- alerts ---------------------------------------------------------------------------------
  async function loadAlerts() {
    const data = await fetchJson("/admin/alerts");
    fill("history-table", data.history.length ? data.history.map((t) => row(
      stamp(t.at), withNode(pill(t.state)), t.rule, t.summary,
    )) : [emptyRow(4, "no alert has fired yet")]);
    fill("rules-table", data.rules.map((r) => row(
      r.name, String(r.threshold ?? r.threshold_s ?? r.budget_usd ?? "—"), count(r.checks),
    )));
  }

  // ---- API keys -------------------------------------------------------------------------------
  function keyRow(k) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Revoke";
    button.className = "danger";
    button.disabled = Boolean(k.revoked_at);
    button.addEventListener("click", async () => {
      if (!confirm(`Revoke ${k.prefix}… of ${k.owner}? Every request with it is refused from now on.`)) return;
      const result = document.getElementById("key-result");
      try { await post(`/admin/keys/${encodeURIComponent(k.id)}/revoke`); result.textContent = `revoked ${k.prefix}…`; }
      catch (error) { result.textContent = `failed: ${error.message}`; }
      await loadKeys();
    });
    return row(cell(`${k.prefix}…`, "mono"), k.owner, k.plan, k.name, stamp(k.created_at),
      k.last_used_at ? stamp(k.last_used_at) : "never", k.revoked_at ? "revoked" : "active", withNode(button));
  }

  async function loadKeys() {
    const data = await fetchJson("/admin/keys");
    fill("keys-table", data.keys.length ? data.keys.map(keyRow) : [emptyRow(8, "no API keys yet")]);
  }

  document.getElementById("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const result = document.getElementById("key-result");
    try {
      const created = await post("/admin/keys", { owner: form.get("owner"), plan: form.get("plan"), name: form.get("name") });
      result.textContent = `new key for ${created.key.owner}: ${created.token}`;
      event.target.reset();
    } catch (error) {
      result.textContent = `failed: ${error.message}`;
    }
    await loadKeys();
  });

  // ---- tabs -----------------------------------------------------------------------------------
  const loaders = { jobs: () => loadJobs(false), queues: loadDead, alerts: loadAlerts, keys: loadKeys };
  function showTab() {
    // `#jobs/<id>` is the jobs tab with that job's panel open.
    const [tab, jobId] = (location.hash || "#overview").slice(1).split("/");
    state.tab = document.querySelector(`[data-section="${tab}"]`) ? tab : "overview";
    if (state.tab === "jobs" && jobId) loadJob(jobId); else document.getElementById("job-panel").hidden = true;
    for (const section of document.querySelectorAll("[data-section]")) section.hidden = section.dataset.section !== state.tab;
    for (const link of document.querySelectorAll("[data-tab]")) link.classList.toggle("active", link.dataset.tab === state.tab);
    if (loaders[state.tab]) loaders[state.tab]().catch(() => { document.getElementById("offline").hidden = false; });
  }

  window.addEventListener("hashchange", showTab);
  document.getElementById("tier").addEventListener("change", () => state.latest && renderLatency(state.latest));
  document.getElementById("job-status").addEventListener("change", () => loadJobs(false));
  document.getElementById("job-tier").addEventListener("change", () => loadJobs(false));
  document.getElementById("jobs-more").addEventListener("click", () => loadJobs(true));
  document.getElementById("dead-refresh").addEventListener("click", () => loadDead());
  document.getElementById("dead-requeue-all").addEventListener("click", () =>
    act("/admin/queues/dead-letters/requeue", (r) => `re-queued ${r.requeued}, kept ${r.kept}`));
  document.getElementById("dead-purge").addEventListener("click", () => {
    if (confirm("Delete every message in the dead-letter queue? This cannot be undone.")) {
      act("/admin/queues/dead-letters/purge", (r) => `purged ${r.purged}`);
    }
  });
  showTab();
  refresh();
})();
