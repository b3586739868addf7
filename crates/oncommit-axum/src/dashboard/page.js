"use strict";
// Every value from the server goes into the page with textContent: nothing is parsed as HTML.
// Where the dashboard is nested (`/dashboard`): the server writes it into the page.
const base = document.documentElement.dataset.base || "";
const STATES = ["pending", "scheduled", "available", "running", "retryable", "completed", "failed", "cancelled"];
const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = sessionStorage.getItem("oncommit-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("oncommit-token", tokenInput.value));

// What the jobs view shows: the state tab, the filters, the page (cursors of the pages
// before this one, so "first page" and live refreshes reload the same page), the ticked
// jobs and the job open in the detail.
// `queueView` is the queue whose own view this is (`/queues/NAME`), if any.
const view = { state: null, filters: {}, cursor: null, nextCursor: null, ticked: new Set(), selected: null, overview: null,
  queueView: null };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function th(names) { return row(names.map(n => el("th", n))); }
function when(t) { return t ? new Date(t).toLocaleString() : ""; }
function ms(n) { return n === null || n === undefined ? "" : n < 1000 ? n + " ms" : (n / 1000) + " s"; }
function span(a, b) {
  if (!a || !b) return "";
  const d = new Date(b) - new Date(a);
  return d < 1000 ? d + " ms" : (d / 1000).toFixed(1) + " s";
}
function auth(extra) {
  return Object.assign({}, extra || {}, tokenInput.value ? { "Authorization": "Bearer " + tokenInput.value } : {});
}
async function get(path) {
  // Reads carry the token too, when one is entered: a server reachable beyond loopback
  // keeps job data behind it.
  const r = await fetch(base + path, { headers: auth() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || (path + ": HTTP " + r.status));
  return body;
}
async function post(path, body) {
  const r = await fetch(base + path, {
    method: "POST", headers: auth(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.error || ("HTTP " + r.status));
  return answer;
}
function say(ok, text) {
  const m = $("message");
  m.className = ok ? "ok" : "bad";
  m.textContent = text;
}
const stateSpan = s => el("span", s, "state " + s.split(" ")[0]);
const stateCell = j => { const td = el("td"); td.appendChild(stateSpan(j.state)); return td; };
const lastError = j => j.errors.length ? j.errors[j.errors.length - 1].error : "";

// Limits an operator has typed and not set yet, by queue: the table is rebuilt at every
// live refresh, and what was typed must survive it (and keep its focus).
const typedLimits = new Map();

// Queues: settings, jobs per state, the last hour's activity, workers, and the actions
// that steer them.
function renderQueues(o) {
  const focused = document.activeElement && document.activeElement.classList.contains("limit")
    ? document.activeElement.closest("tr.queue")?.dataset.queue : undefined;
  const t = $("queues");
  t.replaceChildren(th(["queue", "state", "limits", "jobs", "done/h", "failed/h", "wait p50", "wait p95", "lag", "workers", ""]));
  const settings = new Map(o.queues.map(q => [q.name, q]));
  const activity = new Map(o.activity.map(a => [a.queue, a]));
  const names = [...new Set([...settings.keys(), ...Object.keys(o.counts.queues), ...activity.keys()])].sort();
  const list = $("queue-names");
  list.replaceChildren(...names.map(n => { const opt = el("option"); opt.value = n; return opt; }));
  for (const name of names) {
    const q = settings.get(name) || { paused: false, concurrency_limit: null, rate_limit: null, workers: 0, lag_seconds: 0 };
    const a = activity.get(name) || { completed: 0, failed: 0, wait_p50_ms: null, wait_p95_ms: null };
    const counts = o.counts.queues[name] || {};
    const state = el("td"); state.appendChild(stateSpan(q.paused ? "paused" : "active"));
    const limits = [q.concurrency_limit === null ? "" : q.concurrency_limit + " at once",
      q.rate_limit ? q.rate_limit.max_starts + " per " + q.rate_limit.period_ms + " ms" + (q.rate_limit.per_key ? " per key" : "") : "",
      // A fair queue names its keys with the most jobs waiting.
      q.fair ? "fair" + (q.top_keys && q.top_keys.length
        ? " (most waiting: " + q.top_keys.map(k => k.key + " " + k.available).join(", ") + ")" : "") : ""]
      .filter(Boolean).join(" · ");
    const actions = el("td", null, "actions wrap");
    const toggle = el("button", q.paused ? "resume" : "pause", q.paused ? "resume" : "pause");
    toggle.addEventListener("click", () => steer(name, q.paused ? "resume" : "pause"));
    const limit = el("input", null, "limit"); limit.size = 4; limit.placeholder = "none";
    limit.value = typedLimits.has(name) ? typedLimits.get(name)
      : q.concurrency_limit === null ? "" : String(q.concurrency_limit);
    limit.addEventListener("input", () => typedLimits.set(name, limit.value));
    const setLimit = el("button", "set limit", "set-limit");
    setLimit.addEventListener("click", () => {
      typedLimits.delete(name);
      steer(name, "limit", { concurrency_limit: limit.value.trim() === "" ? null : Number(limit.value) });
    });
    actions.append(toggle, document.createTextNode(" "), limit, setLimit);
    // The jobs of each state it has, as chips that wrap: the table fits the page.
    const jobs = el("td", null, "wrap jobs");
    const held = STATES.filter(s => counts[s]);
    if (held.length) jobs.append(...held.map(s => stateSpan(s + " " + counts[s])));
    else jobs.append(el("span", "none", "muted"));
    const link = el("a", name, "queue-link"); link.href = base + "/queues/" + encodeURIComponent(name);
    link.addEventListener("click", e => { if (plainClick(e)) { e.preventDefault(); openQueue(name); } });
    const nameCell = el("td"); nameCell.appendChild(link);
    const tr = row([nameCell, state, el("td", limits, "wrap"), jobs,
      el("td", a.completed, "num done"), el("td", a.failed, "num"), el("td", ms(a.wait_p50_ms), "num p50"),
      el("td", ms(a.wait_p95_ms), "num p95"), el("td", ms(Math.round(q.lag_seconds * 1000)), "num lag"),
      el("td", q.workers, "num"), actions], name === view.queueView ? "queue current" : "queue");
    tr.dataset.queue = name;
    t.appendChild(tr);
    if (name === focused) limit.focus();
  }
}

async function steer(name, action, body) {
  try {
    await post("/api/queues/" + encodeURIComponent(name) + "/" + action, body);
    say(true, "queue " + name + ": " + action + " done");
  } catch (e) { say(false, e.message); }
  refresh();
}

// The last 60 minutes, one bar per minute, with both axes labelled; each minute, empty or
// not, answers a pointer with its time and count (in #chart-value and as a tooltip). The
// minute under the pointer (0..59, or null) survives the redraw of each refresh.
let chartHover = null;
$("chart").addEventListener("mouseleave", () => { chartHover = null; $("chart-value").textContent = "Point at a minute to read its count."; });
function renderChart(activity) {
  const svg = $("chart");
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    svg.appendChild(e);
    return e;
  };
  const now = Math.floor(Date.now() / 60000);
  const byMinute = new Map();
  for (const a of activity) for (const [m, n] of a.completed_per_minute) byMinute.set(m, (byMinute.get(m) || 0) + n);
  const counts = Array.from({ length: 60 }, (_, i) => byMinute.get(now - 59 + i) || 0);
  const max = Math.max(1, ...counts);
  const width = svg.clientWidth || 600, height = 150, left = 48, right = 8, top = 8, bottom = 24;
  const plotW = width - left - right, plotH = height - top - bottom, barW = plotW / 60;
  for (const v of [...new Set([0, Math.round(max / 2), max])]) {
    const y = top + plotH - (v / max) * plotH;
    add("line", { x1: left, x2: width - right, y1: y, y2: y });
    add("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "y-label" }, v);
  }
  for (const [i, label, anchor] of [[0, "60 min ago", "start"], [30, "30 min ago", "middle"], [59, "now", "end"]]) {
    add("text", { x: left + (anchor === "end" ? (i + 1) * barW : anchor === "start" ? i * barW : i * barW + barW / 2), y: height - 6,
      "text-anchor": anchor, class: "x-label" }, label);
  }
  const say = i => {
    const at = new Date((now - 59 + i) * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return at + ": " + counts[i] + (counts[i] === 1 ? " job" : " jobs") + " completed";
  };
  counts.forEach((n, i) => {
    const h = (n / max) * plotH;
    if (n) add("rect", { class: "bar", x: left + i * barW + 1, width: Math.max(1, barW - 2), y: top + plotH - h, height: Math.max(1, h) });
    const text = say(i);
    const hit = add("rect", { class: "hit", x: left + i * barW, width: barW, y: top, height: plotH, fill: "transparent" });
    hit.dataset.count = n;
    const title = document.createElementNS(ns, "title"); title.textContent = text; hit.appendChild(title);
    hit.addEventListener("mouseenter", () => { chartHover = i; $("chart-value").textContent = text; });
  });
  if (chartHover !== null) $("chart-value").textContent = say(chartHover);
}

// State tabs with counts: of the queue filtered on, else of all queues. Finished jobs are
// counted at most once a minute (cheap on a table of millions).
function renderTabs() {
  const o = view.overview;
  if (!o) return;
  const q = view.filters.queue;
  const counts = (q && o.counts.queues[q]) || (q ? {} : o.counts.total);
  const nav = $("tabs");
  const all = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
  nav.replaceChildren(...[[null, "all", all], ...STATES.map(s => [s, s, counts[s] || 0])].map(([state, label, n]) => {
    const b = el("button", label + " " + n, "tab" + (view.state === state ? " current" : ""));
    b.type = "button";
    b.dataset.state = state || "all";
    b.addEventListener("click", () => { view.state = state; view.selected = null; firstPage(); });
    return b;
  }));
}

function query(extra) {
  const p = new URLSearchParams();
  if (view.state) p.set("state", view.state);
  for (const [k, v] of Object.entries(view.filters)) if (v) p.set(k, v);
  for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) p.set(k, v);
  return p.toString();
}
function readFilters() {
  const v = id => $(id).value.trim();
  const time = id => v(id) ? new Date(v(id)).toISOString() : "";
  view.filters = { queue: v("f-queue"), task: v("f-task"), priority: v("f-priority"), since: time("f-since"),
    until: time("f-until"), search: v("f-search"), order: $("f-order").value };
}
// The selection the filter stands for, for a bulk action on all it selects.
function filterSelection() {
  const f = view.filters, or = x => x || null;
  return { states: view.state ? [view.state] : STATES, queue: or(f.queue), task: or(f.task),
    priority: f.priority ? Number(f.priority) : null, since: or(f.since), until: or(f.until), search: or(f.search) };
}

// Each load of the jobs page is numbered, and only the latest is shown: a live refresh's
// answer that arrives after a filter's or a page turn's would show (and set the cursors of)
// the view as it was before.
let jobsLoads = 0;
async function loadJobs() {
  const load = ++jobsLoads;
  const page = await get("/api/jobs?" + query({ cursor: view.cursor, limit: 50 }));
  if (load !== jobsLoads) return;
  view.nextCursor = page.next_cursor;
  const t = $("jobs");
  const all = el("input"); all.type = "checkbox"; all.id = "tick-all"; all.title = "tick every job on this page";
  all.checked = page.jobs.length > 0 && page.jobs.every(j => view.ticked.has(j.id));
  all.addEventListener("change", () => { for (const j of page.jobs) all.checked ? view.ticked.add(j.id) : view.ticked.delete(j.id); loadJobs(); });
  const head = th(["", "id", "task", "queue", "state", "priority", "attempt", "created", "finished", "last error"]);
  head.firstChild.appendChild(all);
  t.replaceChildren(head);
  for (const j of page.jobs) {
    const box = el("input", null, "tick"); box.type = "checkbox"; box.checked = view.ticked.has(j.id);
    box.addEventListener("click", e => e.stopPropagation());
    box.addEventListener("change", () => { box.checked ? view.ticked.add(j.id) : view.ticked.delete(j.id); showTicked(); });
    const cell = el("td"); cell.appendChild(box);
    const idCell = el("td", null, "num");
    const link = el("a", j.id, "job-link"); link.href = jobUrl(j.id);
    link.addEventListener("click", e => { e.stopPropagation(); if (plainClick(e)) { e.preventDefault(); select(j.id); } });
    idCell.appendChild(link);
    const tr = row([cell, idCell, j.task, j.queue, stateCell(j), el("td", j.priority, "num"),
      el("td", j.attempt + "/" + j.max_attempts, "num"), when(j.created_at), when(j.finished_at), lastError(j)], "job");
    tr.dataset.id = j.id;
    tr.addEventListener("click", () => select(j.id));
    t.appendChild(tr);
  }
  if (!page.jobs.length) t.appendChild(row([el("td"), el("td", "no job matches", "muted")]));
  $("next-page").disabled = page.next_cursor === null;
  $("first-page").disabled = view.cursor === null;
  $("page-note").textContent = page.jobs.length + (page.jobs.length === 1 ? " job" : " jobs") +
    (page.next_cursor !== null && page.jobs.length < 50 ? " · searched to job " + page.next_cursor + ", more may follow" : "");
  showTicked();
}
function showTicked() { $("picked-count").textContent = view.ticked.size + " ticked"; }
function firstPage() { view.cursor = null; go(); renderView(); }
$("filters").addEventListener("submit", e => {
  e.preventDefault();
  readFilters();
  if (view.queueView !== null && view.filters.queue !== view.queueView) view.queueView = null;
  firstPage();
});
$("clear").addEventListener("click", () => {
  $("filters").reset(); view.state = null; view.queueView = null; view.selected = null; readFilters(); firstPage();
});
$("first-page").addEventListener("click", firstPage);
$("next-page").addEventListener("click", () => {
  if (view.nextCursor === null) return;
  view.cursor = view.nextCursor;
  go();
  loadJobs().catch(e => say(false, e.message));
});

// Every view has its address, and the back button walks them: the list with its state tab,
// filters and page (`/jobs?state=failed&queue=mail`), a job (`/jobs/35`, the list's
// filters kept), a queue (`/queues/mail`).
const FILTERS = ["queue", "task", "priority", "since", "until", "search", "order"];
function listQuery(withQueue) {
  const p = new URLSearchParams();
  if (view.state) p.set("state", view.state);
  for (const k of FILTERS) {
    const v = view.filters[k];
    if (!v || (k === "order" && v === "newest") || (k === "queue" && !withQueue)) continue;
    p.set(k, v);
  }
  if (view.cursor !== null) p.set("cursor", view.cursor);
  const q = p.toString();
  return q ? "?" + q : "";
}
function jobUrl(id) { return base + "/jobs/" + id + listQuery(true); }
function currentUrl() {
  if (view.selected !== null) return jobUrl(view.selected);
  if (view.queueView !== null) return base + "/queues/" + encodeURIComponent(view.queueView) + listQuery(false);
  const q = listQuery(true);
  return base + (q ? "/jobs" + q : "/");
}
// Records the view in the address bar (and the history, so that back returns to it).
function go() {
  const url = currentUrl();
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}
// Reads the view from the address: at load and when the back or forward button is used.
function fromUrl() {
  const rest = location.pathname.slice(base.length);
  const p = new URLSearchParams(location.search);
  const job = rest.match(/^\/jobs\/(\d+)\/?$/), queue = rest.match(/^\/queues\/([^/]+)\/?$/);
  view.selected = job ? Number(job[1]) : null;
  view.queueView = queue ? decodeURIComponent(queue[1]) : null;
  view.state = STATES.includes(p.get("state")) ? p.get("state") : null;
  view.filters = Object.fromEntries(FILTERS.map(k => [k, p.get(k) || ""]));
  if (view.queueView !== null) view.filters.queue = view.queueView;
  if (!view.filters.order) view.filters.order = "newest";
  view.cursor = /^\d+$/.test(p.get("cursor") || "") ? Number(p.get("cursor")) : null;
  // The form shows what the address says.
  const local = iso => { if (!iso) return ""; const d = new Date(iso); return isNaN(d) ? "" : new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };
  for (const k of ["queue", "task", "priority", "search"]) $("f-" + k).value = view.filters[k];
  $("f-since").value = local(view.filters.since);
  $("f-until").value = local(view.filters.until);
  $("f-order").value = view.filters.order;
}
function renderView() {
  $("jobs-scope").textContent = view.queueView !== null ? "· queue " + view.queueView : "";
  renderTabs();
  if (view.overview) renderQueues(view.overview);
  loadJobs().catch(e => say(false, e.message));
  showJob();
}
window.addEventListener("popstate", () => { fromUrl(); renderView(); });
// A click that opens the link here, not in a new tab or window.
function plainClick(e) { return e.button === 0 && !e.ctrlKey && !e.metaKey && !e.shiftKey && !e.altKey; }
function select(id) { view.selected = id; go(); showJob(); }
function openQueue(name) {
  view.queueView = name; view.selected = null; view.state = null; view.cursor = null;
  view.filters = { queue: name, order: "newest" };
  go();
  fromUrl();
  renderView();
}
$("home").addEventListener("click", e => {
  if (!plainClick(e)) return;
  e.preventDefault();
  history.pushState(null, "", base + "/");
  fromUrl();
  renderView();
});

// Bulk actions, on the ticked jobs or on all the filter selects: count first, then act
// only after a confirmation that names the count.
let pending = null;
for (const b of document.querySelectorAll("#bulk button[data-action]")) {
  b.addEventListener("click", async () => {
    const picked = b.dataset.scope === "picked";
    if (picked && view.ticked.size === 0) { say(false, "tick some jobs first"); return; }
    const selection = picked ? { states: [], ids: [...view.ticked] } : filterSelection();
    try {
      const { matched } = await post("/api/jobs/bulk/count", selection);
      pending = { action: b.dataset.action, selection, picked };
      $("question").textContent = b.dataset.action + " " + matched + (matched === 1 ? " job" : " jobs") +
        (picked ? " (ticked)" : " (all the filter selects)") + "? ";
      $("confirm").hidden = false;
    } catch (e) { say(false, e.message); }
  });
}
$("no").addEventListener("click", () => { $("confirm").hidden = true; pending = null; });
$("yes").addEventListener("click", async () => {
  $("confirm").hidden = true;
  if (!pending) return;
  const { action, selection, picked } = pending;
  pending = null;
  try {
    const done = await post("/api/jobs/bulk/" + action, selection);
    say(true, action + ": " + Object.entries(done).map(([k, v]) => v + " " + k).join(", "));
    if (picked) view.ticked.clear();
  } catch (e) { say(false, e.message); }
  refresh();
});

// One job: its head and actions, keys, attempts, timeline, dependencies, args, result and
// workflow.
// Numbered like the jobs page's loads: only the latest job asked for is shown.
let jobDetailLoads = 0;
async function showJob() {
  const d = $("detail");
  const load = ++jobDetailLoads;
  if (view.selected === null) {
    d.replaceChildren(el("span", "Click a job to see its arguments, attempts, timeline and dependencies.", "muted"));
    return;
  }
  let j;
  try { j = await get("/api/jobs/" + view.selected); } catch (e) {
    if (load === jobDetailLoads) d.replaceChildren(el("span", "job " + view.selected + " is gone", "muted"));
    return;
  }
  if (load !== jobDetailLoads) return;
  const head = el("div");
  head.append(el("strong", "job " + j.id + " · " + j.task + " · " + j.queue + " · "), stateSpan(j.state),
    el("span", " attempt " + j.attempt + " of " + j.max_attempts + " · priority " + j.priority, "muted"));
  const actions = el("div", null, "actions");
  for (const action of ["retry", "cancel", "delete"]) {
    const b = el("button", action); b.id = "action-" + action;
    b.addEventListener("click", () => act(action, j.id));
    actions.append(b, document.createTextNode(" "));
  }
  const keys = [["unique key", j.unique_key], ["concurrency key", j.concurrency_key], ["fair key", j.fair_key], ["workflow", j.workflow_id]].filter(([, v]) => v);
  const keyLine = el("div", keys.map(([k, v]) => k + " " + v).join(" · "), "muted keys");
  const parts = [head, actions, keyLine, el("h3", "attempts"), attempts(j), el("h3", "timeline"), timeline(j)];
  if (j.parents.length || j.dependants.length) parts.push(el("h3", "dependencies"), dependencies(j));
  parts.push(el("h3", "args"), el("pre", JSON.stringify(j.args, null, 2), "args"));
  if (j.result !== null && j.result !== undefined) parts.push(el("h3", "result"), el("pre", JSON.stringify(j.result, null, 2)));
  if (j.workflow_id) parts.push(await workflowList(j.workflow_id, j.id));
  d.replaceChildren(...parts);
}

// Every attempt: the failed ones from the error history, then the current or last one.
function attempts(j) {
  const t = el("table", null, "attempts");
  t.appendChild(th(["attempt", "worker", "started", "took", "outcome"]));
  for (const e of j.errors) {
    t.appendChild(row([el("td", e.attempt, "num"), e.worker || "", when(e.started), e.started ? span(e.started, e.at) : "", e.error]));
  }
  const last = j.errors.length ? j.errors[j.errors.length - 1].attempt : 0;
  if (j.attempt > last && j.attempted_at) {
    const outcome = j.state === "running" ? "running" : j.state === "completed" ? "completed" : j.state;
    t.appendChild(row([el("td", j.attempt, "num"), j.lease_owner || "", when(j.attempted_at),
      span(j.attempted_at, j.finished_at), outcome]));
  }
  if (t.rows.length === 1) t.appendChild(row([el("td", "not run yet", "muted")]));
  return t;
}

function timeline(j) {
  const events = [[j.created_at, "enqueued"]];
  if (j.run_at !== j.created_at) events.push([j.run_at, j.state === "scheduled" || j.state === "retryable" ? "due" : "due (last)"]);
  for (const e of j.errors) {
    if (e.started) events.push([new Date(e.started).toISOString(), "attempt " + e.attempt + " started" + (e.worker ? " on " + e.worker : "")]);
    events.push([new Date(e.at).toISOString(), "attempt " + e.attempt + " failed: " + e.error]);
  }
  const last = j.errors.length ? j.errors[j.errors.length - 1].attempt : 0;
  if (j.attempted_at && j.attempt > last) events.push([j.attempted_at, "attempt " + j.attempt + " started" + (j.lease_owner ? " on " + j.lease_owner : "")]);
  if (j.finished_at) events.push([j.finished_at, j.state]);
  events.sort((a, b) => new Date(a[0]) - new Date(b[0]));
  const list = el("ol", null, "timeline");
  for (const [t, what] of events) { const li = el("li"); li.append(el("span", when(t) + " ", "muted"), el("span", what)); list.appendChild(li); }
  return list;
}

function dependencies(j) {
  const box = el("div", null, "dependencies");
  for (const [label, jobs, cls] of [["waits for", j.parents, "dep-parent"], ["awaited by", j.dependants, "dep-dependant"]]) {
    if (!jobs.length) continue;
    const line = el("div"); line.appendChild(el("span", label + ": ", "muted"));
    for (const p of jobs) {
      const a = el("button", p.id + " " + p.task + " ", cls); a.type = "button"; a.dataset.id = p.id;
      a.appendChild(stateSpan(p.state));
      a.addEventListener("click", () => select(p.id));
      line.append(a, document.createTextNode(" "));
    }
    box.appendChild(line);
  }
  return box;
}

// A workflow as an indented list: each step one level deeper than its deepest parent, with
// its state; the selected job is marked.
async function workflowList(id, current) {
  const box = el("div", null, "workflow");
  box.appendChild(el("h3", "workflow " + id));
  let w;
  try { w = await get("/api/workflows/" + encodeURIComponent(id)); } catch (e) { box.appendChild(el("div", "workflow " + id + " is gone", "muted")); return box; }
  const depth = new Map();
  const list = el("ul", null, "steps");
  for (const step of w.jobs) {
    const d = step.parents.reduce((m, p) => Math.max(m, (depth.get(p) ?? -1) + 1), 0);
    depth.set(step.job.id, d);
    const li = el("li", null, step.job.id === current ? "step current" : "step");
    li.dataset.id = step.job.id;
    li.style.paddingLeft = (d * 20) + "px";
    li.append(el("span", step.job.id + " " + step.job.task + " "), stateSpan(step.job.state));
    if (step.parents.length) li.appendChild(el("span", " ← " + step.parents.join(", "), "muted"));
    li.addEventListener("click", () => select(step.job.id));
    list.appendChild(li);
  }
  box.appendChild(list);
  return box;
}

async function act(action, id) {
  try {
    await post("/api/jobs/" + id + "/" + action);
    say(true, action + ": done");
  } catch (e) { say(false, e.message); }
  refresh();
}

function renderWorkers(workers) {
  const w = $("workers");
  w.replaceChildren(th(["worker", "pid", "queues", "started", "heartbeat"]));
  for (const x of workers) w.appendChild(row([x.id, x.pid, JSON.stringify(x.queues), when(x.started_at), when(x.heartbeat_at)]));
}

// A refresh: the overview (one request of a few index-served statements), the jobs page
// shown (the same cursor: the page stays put while its jobs move) and the open job.
let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    view.overview = await get("/api/overview");
    renderQueues(view.overview);
    renderChart(view.overview.activity);
    renderTabs();
    renderWorkers(view.overview.workers);
    await loadJobs();
    await showJob();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("updated").textContent = "refresh failed: " + e.message;
  } finally {
    refreshing = false;
  }
}
fromUrl();
$("jobs-scope").textContent = view.queueView !== null ? "· queue " + view.queueView : "";
refresh();
setInterval(() => { if ($("live").checked && !document.hidden) refresh(); }, 3000);
