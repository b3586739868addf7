"use strict";
// Every value from the server goes into the page with textContent: nothing is parsed as HTML.
const base = location.pathname.replace(/\/$/, "");
const STATES = ["pending", "scheduled", "available", "running", "retryable", "completed", "failed", "cancelled"];
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("oncommit-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("oncommit-token", tokenInput.value));
let selected = null;

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
function when(t) { return t ? new Date(t).toLocaleTimeString() : ""; }
async function get(path) {
  // Reads carry the token too, when one is entered: a server reachable beyond loopback
  // keeps job data behind it.
  const r = await fetch(base + path, tokenInput.value ? { headers: { "Authorization": "Bearer " + tokenInput.value } } : {});
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

// One row per queue: its settings (paused, limits, shared by every worker), its jobs per
// state, its workers, and the actions that steer it.
function renderQueues(stats, queues) {
  const t = document.getElementById("queues");
  t.replaceChildren(th(["queue", "state", "limit", "rate", ...STATES, "workers", ""]));
  const settings = new Map(queues.map(q => [q.name, q]));
  const names = [...new Set([...settings.keys(), ...Object.keys(stats.queues)])].sort();
  for (const name of names) {
    const q = settings.get(name) || { paused: false, concurrency_limit: null, rate_limit: null, workers: 0 };
    const counts = stats.queues[name] || {};
    const state = el("td"); state.appendChild(el("span", q.paused ? "paused" : "active", "state " + (q.paused ? "paused" : "active")));
    const rate = q.rate_limit ? q.rate_limit.max_starts + " per " + q.rate_limit.period_ms + " ms" + (q.rate_limit.per_key ? " per key" : "") : "";
    const actions = el("td");
    const toggle = el("button", q.paused ? "resume" : "pause", q.paused ? "resume" : "pause");
    toggle.addEventListener("click", () => steer(name, q.paused ? "resume" : "pause"));
    const limit = el("input", null, "limit"); limit.size = 4; limit.placeholder = "none";
    limit.value = q.concurrency_limit === null ? "" : String(q.concurrency_limit);
    const setLimit = el("button", "set limit", "set-limit");
    setLimit.addEventListener("click", () => steer(name, "limit",
      { concurrency_limit: limit.value.trim() === "" ? null : Number(limit.value) }));
    actions.append(toggle, document.createTextNode(" "), limit, setLimit);
    const tr = row([el("td", name), state, el("td", q.concurrency_limit === null ? "" : q.concurrency_limit, "num"), el("td", rate),
      ...STATES.map(s => el("td", counts[s] || 0, "num")), el("td", q.workers, "num"), actions], "queue");
    tr.dataset.queue = name;
    t.appendChild(tr);
  }
  t.appendChild(row([el("td", "(all)"), el("td"), el("td"), el("td"), ...STATES.map(s => el("td", stats.total[s] || 0, "num")), el("td"), el("td")]));
}

// Pauses, resumes or limits a queue for every worker.
async function steer(name, action, body) {
  const m = document.getElementById("message");
  const r = await fetch(base + "/api/queues/" + encodeURIComponent(name) + "/" + action, {
    method: "POST",
    headers: Object.assign({ "Authorization": "Bearer " + tokenInput.value }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await r.json().catch(() => ({}));
  m.className = r.ok ? "ok" : "bad";
  m.textContent = r.ok ? "queue " + name + ": " + action + " done" : (answer.error || ("HTTP " + r.status));
  refresh();
}

function renderChart(minutes) {
  const svg = document.getElementById("chart");
  svg.replaceChildren();
  const now = Math.floor(Date.now() / 60000);
  const byMinute = new Map(minutes.map(([m, n]) => [m, n]));
  const max = Math.max(1, ...minutes.map(([, n]) => n));
  const width = svg.clientWidth || 600, barW = width / 60;
  for (let i = 0; i < 60; i++) {
    const n = byMinute.get(now - 59 + i) || 0;
    const h = Math.round((n / max) * 100);
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", String(i * barW)); r.setAttribute("width", String(Math.max(1, barW - 2)));
    r.setAttribute("y", String(110 - h)); r.setAttribute("height", String(h));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = n + " completed"; r.appendChild(title);
    svg.appendChild(r);
  }
}

function jobTable(id, jobs, columns) {
  const t = document.getElementById(id);
  t.replaceChildren(th(columns.map(c => c[0])));
  for (const j of jobs) {
    const tr = row(columns.map(([, f]) => f(j)), "job");
    tr.dataset.id = j.id;
    tr.addEventListener("click", () => { selected = j.id; showJob(); });
    t.appendChild(tr);
  }
  if (!jobs.length) t.appendChild(row([el("td", "none", "muted")]));
}
const stateCell = j => { const td = el("td"); td.appendChild(el("span", j.state, "state " + j.state)); return td; };
const lastError = j => el("td", j.errors.length ? j.errors[j.errors.length - 1].error : "");

async function showJob() {
  if (selected === null) return;
  const d = document.getElementById("detail");
  let j;
  try { j = await get("/api/jobs/" + selected); } catch (e) { d.replaceChildren(el("span", "job " + selected + " is gone", "muted")); return; }
  const head = el("div");
  head.append(el("strong", "job " + j.id + " · " + j.task + " · " + j.queue + " · "), el("span", j.state, "state " + j.state),
    el("span", " attempt " + j.attempt + " of " + j.max_attempts, "muted"));
  const actions = el("div");
  for (const action of ["retry", "cancel", "delete"]) {
    const b = el("button", action); b.id = "action-" + action;
    b.addEventListener("click", () => act(action, j.id)); actions.appendChild(b); actions.appendChild(document.createTextNode(" "));
  }
  const times = el("div", "created " + when(j.created_at) + " · run at " + when(j.run_at) +
    (j.attempted_at ? " · attempted " + when(j.attempted_at) : "") + (j.finished_at ? " · finished " + when(j.finished_at) : ""), "muted");
  const errors = el("table");
  errors.appendChild(th(["attempt", "at", "error"]));
  for (const e of j.errors) errors.appendChild(row([e.attempt, when(e.at), e.error]));
  const parts = [head, times, el("pre", JSON.stringify(j.args, null, 2))];
  if (j.result !== null && j.result !== undefined) parts.push(el("div", "result", "muted"), el("pre", JSON.stringify(j.result, null, 2)));
  parts.push(errors, actions);
  if (j.workflow_id) parts.push(await workflowList(j.workflow_id, j.id));
  d.replaceChildren(...parts);
}

// A workflow as an indented list: each step one level deeper than its deepest parent, with
// its state; the selected job is marked.
async function workflowList(id, current) {
  const box = el("div", null, "workflow");
  box.appendChild(el("div", "workflow " + id, "muted"));
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
    li.append(el("span", step.job.id + " " + step.job.task + " "), el("span", step.job.state, "state " + step.job.state));
    if (step.parents.length) li.appendChild(el("span", " ← " + step.parents.join(", "), "muted"));
    li.addEventListener("click", () => { selected = step.job.id; showJob(); });
    list.appendChild(li);
  }
  box.appendChild(list);
  return box;
}

async function act(action, id) {
  const m = document.getElementById("message");
  const r = await fetch(base + "/api/jobs/" + id + "/" + action, {
    method: "POST", headers: { "Authorization": "Bearer " + tokenInput.value },
  });
  const body = await r.json().catch(() => ({}));
  m.className = r.ok ? "ok" : "bad";
  m.textContent = r.ok ? action + ": done" : (body.error || ("HTTP " + r.status));
  refresh();
}

// Bulk actions: count what the form selects, then act on it only after a confirmation that
// names the count. Changing the form starts over.
const bulk = { form: document.getElementById("bulk-form"), selection: null, action: null };
function bulkSelection() {
  const text = id => document.getElementById(id).value.trim() || null;
  const since = document.getElementById("bulk-since").value;
  return {
    states: [document.getElementById("bulk-state").value], queue: text("bulk-queue"), task: text("bulk-task"),
    error_contains: text("bulk-error"), until: null,
    since: since ? new Date(Date.now() - Number(since) * 1000).toISOString() : null,
  };
}
function bulkReset() {
  bulk.selection = null;
  document.getElementById("bulk-matched").textContent = "";
  document.getElementById("bulk-actions").hidden = true;
  document.getElementById("bulk-confirm").hidden = true;
}
async function bulkPost(path, body) {
  const r = await fetch(base + "/api/jobs/bulk/" + path, {
    method: "POST", body: JSON.stringify(body),
    headers: Object.assign({ "Content-Type": "application/json" }, tokenInput.value ? { "Authorization": "Bearer " + tokenInput.value } : {}),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.error || ("HTTP " + r.status));
  return answer;
}
bulk.form.addEventListener("input", bulkReset);
bulk.form.addEventListener("submit", async (e) => {
  e.preventDefault();
  bulkReset();
  const selection = bulkSelection();
  const m = document.getElementById("bulk-matched");
  try {
    const { matched } = await bulkPost("count", selection);
    bulk.selection = selection; bulk.matched = matched;
    m.textContent = matched + (matched === 1 ? " job" : " jobs") + " selected";
    document.getElementById("bulk-actions").hidden = matched === 0;
  } catch (err) { m.textContent = err.message; }
});
for (const b of document.querySelectorAll("#bulk-actions button")) {
  b.addEventListener("click", () => {
    bulk.action = b.dataset.action;
    document.getElementById("bulk-question").textContent = b.dataset.action + " " + bulk.matched + (bulk.matched === 1 ? " job" : " jobs") + "? ";
    document.getElementById("bulk-confirm").hidden = false;
  });
}
document.getElementById("bulk-no").addEventListener("click", () => { document.getElementById("bulk-confirm").hidden = true; });
document.getElementById("bulk-yes").addEventListener("click", async () => {
  const m = document.getElementById("message");
  try {
    const done = await bulkPost(bulk.action, bulk.selection);
    m.className = "ok";
    m.textContent = bulk.action + ": " + Object.entries(done).map(([k, v]) => v + " " + k).join(", ");
  } catch (err) { m.className = "bad"; m.textContent = err.message; }
  bulkReset();
  document.getElementById("bulk-matched").textContent = m.textContent;
  refresh();
});

async function refresh() {
  try {
    const [stats, tput, running, failed, retryable, recent, workers, queues] = await Promise.all([
      get("/api/stats"), get("/api/throughput"), get("/api/jobs?state=running"), get("/api/jobs?state=failed&limit=20"),
      get("/api/jobs?state=retryable&limit=20"), get("/api/jobs?limit=30"), get("/api/workers"), get("/api/queues"),
    ]);
    renderQueues(stats, queues.queues);
    renderChart(tput.minutes);
    jobTable("running", running.jobs, [["id", j => j.id], ["task", j => j.task], ["queue", j => j.queue], ["attempt", j => j.attempt], ["worker", j => j.lease_owner || ""]]);
    jobTable("failures", failed.jobs.concat(retryable.jobs), [["id", j => j.id], ["task", j => j.task], ["state", stateCell], ["error", lastError]]);
    jobTable("recent", recent.jobs, [["id", j => j.id], ["task", j => j.task], ["queue", j => j.queue], ["state", stateCell], ["attempt", j => j.attempt + "/" + j.max_attempts], ["created", j => when(j.created_at)], ["last error", lastError]]);
    const w = document.getElementById("workers");
    w.replaceChildren(th(["worker", "pid", "queues", "started", "heartbeat"]));
    for (const x of workers.workers) w.appendChild(row([x.id, x.pid, JSON.stringify(x.queues), when(x.started_at), when(x.heartbeat_at)]));
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    showJob();
  } catch (e) {
    document.getElementById("updated").textContent = "refresh failed: " + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
