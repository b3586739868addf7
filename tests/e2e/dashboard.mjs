// Drives the dashboard in real headless Chromium, view by view:
// - the jobs view: a failed job appears, its arguments shown as text (never parsed as
//   HTML); the state tabs carry counts and filter; the queue filter, the search (by args
//   content and by id) and the order narrow the list;
// - the job detail: attempts with their worker, the timeline, a workflow's steps and a
//   step's dependencies; a retry clicked there;
// - pages: the next page of a queue of 60 jobs, and back to the first;
// - bulk actions: a ticked job retried, then every job of a filter deleted, each after a
//   confirmation naming the count; a job cancelled from its detail;
// - the queues view: the last hour's activity (done, latency), and pause, limit, resume;
// - addresses: a job's, a filtered list's and a queue's, each opened directly; the back
//   button walking the views; the chart's axes and the value of a minute under the pointer;
// - the layout at 1280 x 800 without horizontal scrolling, light and dark (the system's);
// and takes screenshots of the page and of a job's detail.
//
// usage: node dashboard.mjs <base-url> <admin-token> <failed-job-id> <screenshot-dir>
//                           <workflow-job-id> <failed-job-id-on-queue-bulk>
// (and 60 available jobs on queue `many`, which no worker serves)
import { chromium } from "playwright-core";

const [base, token, jobId, shots, workflowJobId, doomedId] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const wait = { timeout: 20000 };
const fail = (why) => { throw new Error(why); };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${base}/dashboard`);
  await page.fill("#token", token);
  await page.dispatchEvent("#token", "change");
  const api = async (path) => (await page.request.get(`${base}/dashboard${path}`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const rows = () => page.locator("#jobs tr.job");
  const ids = async () => (await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.id)));
  const filter = async (fields) => {
    await page.locator("#clear").click();
    for (const [id, value] of Object.entries(fields)) {
      if (id === "f-order") await page.selectOption("#f-order", value); else await page.fill(`#${id}`, value);
    }
    await page.locator("#apply").click();
  };

  // The jobs view lists the failed job; the failed tab counts and filters.
  const row = page.locator(`#jobs tr.job[data-id="${jobId}"]`);
  await row.waitFor(wait);
  await page.locator("#queues tr.queue").first().waitFor(wait);
  // Everything fits 1280 px: no horizontal scrolling, the queues' limit controls in view.
  const fits = async (where) => {
    const { scroll, inner, right } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
      right: Math.max(...[...document.querySelectorAll("#queues button.set-limit, #queues input.limit")].map((e) => e.getBoundingClientRect().right)),
    }));
    if (scroll > inner || right > inner) fail(`${where}: the page is ${scroll} px wide (controls end at ${right}) in a ${inner} px window`);
  };
  await fits("the jobs view");

  // Addresses. A job's link is its address, and opening it shows the job.
  const prefix = new URL(base).pathname.replace(/\/$/, "") + "/dashboard";
  const href = await row.locator("a.job-link").getAttribute("href");
  if (href !== `${prefix}/jobs/${jobId}`) fail(`the job's link is ${href}`);
  await page.goto(`${base}/dashboard/jobs/${jobId}`);
  await page.locator("#detail strong", { hasText: `job ${jobId} ·` }).waitFor(wait);
  await fits("a job's view");
  // A filtered list's address carries its filters: opened directly, it shows that list.
  await page.goto(`${base}/dashboard/jobs?state=available&queue=many`);
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr.job").length === 50, null, wait);
  await page.locator('#tabs button.current[data-state="available"]').waitFor(wait);
  if (await page.inputValue("#f-queue") !== "many") fail("the filter form does not show the address's queue");
  // A queue's view, from its link in the queues table.
  await page.locator('#queues a.queue-link', { hasText: /^bulk$/ }).click();
  await page.waitForURL(/\/dashboard\/queues\/bulk$/, wait);
  await page.locator("#jobs-scope", { hasText: "queue bulk" }).waitFor(wait);
  await page.locator('#queues tr.queue.current[data-queue="bulk"]').waitFor(wait);
  await page.waitForFunction((d) => [...document.querySelectorAll("#jobs tr.job")].map((tr) => tr.dataset.id).join() === d, doomedId, wait);
  // Back: to the filtered list, then forward again; a click on a job, then back to the list.
  await page.goBack();
  await page.waitForURL(/\/dashboard\/jobs\?state=available&queue=many$/, wait);
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr.job").length === 50, null, wait);
  await page.goForward();
  await page.locator("#jobs-scope", { hasText: "queue bulk" }).waitFor(wait);
  await page.locator(`#jobs tr.job[data-id="${doomedId}"]`).click();
  await page.waitForURL(new RegExp(`/dashboard/jobs/${doomedId}\\?queue=bulk$`), wait);
  await page.locator("#detail strong", { hasText: `job ${doomedId} ·` }).waitFor(wait);
  await page.goBack();
  await page.waitForURL(/\/dashboard\/queues\/bulk$/, wait);
  await page.locator("#detail", { hasText: "Click a job" }).waitFor(wait);
  await page.goto(`${base}/dashboard`);
  await row.waitFor(wait);

  // The chart: both axes labelled, the time range named, a minute's count under the pointer.
  for (const label of ["60 min ago", "30 min ago", "now"]) await page.locator("#chart text.x-label", { hasText: label }).waitFor(wait);
  if (await page.locator("#chart text.y-label").count() < 2) fail("the chart's value axis is not labelled");
  const minutes = page.locator("#chart rect.hit");
  if (await minutes.count() !== 60) fail("the chart does not have 60 minutes");
  await minutes.nth(59).hover();
  await page.locator("#chart-value", { hasText: / jobs? completed$/ }).waitFor(wait);
  const failedTab = page.locator('#tabs button[data-state="failed"]');
  await page.locator('#tabs button[data-state="failed"]', { hasText: /failed [1-9]/ }).waitFor(wait);
  await failedTab.click();
  await page.locator('#tabs button.current[data-state="failed"]').waitFor(wait);
  await page.waitForFunction(() => [...document.querySelectorAll("#jobs tr.job")].every((tr) => tr.querySelector(".state").textContent === "failed"), null, wait);
  if (!(await ids()).includes(jobId)) fail("the failed tab does not list the failed job");
  await page.locator('#tabs button[data-state="all"]').click();

  // Filters: the queue, then a search in the args, then a search by id, then the order.
  await filter({ "f-queue": "bulk" });
  await page.waitForFunction((d) => { const r = [...document.querySelectorAll("#jobs tr.job")]; return r.length === 1 && r[0].dataset.id === d; }, doomedId, wait);
  await filter({ "f-search": "onerror=alert" });
  await page.waitForFunction((d) => { const r = [...document.querySelectorAll("#jobs tr.job")]; return r.length === 1 && r[0].dataset.id === d; }, jobId, wait);
  // (a number also matches args and errors that contain it: the job is among the rows)
  await filter({ "f-search": workflowJobId });
  await page.waitForFunction((d) => [...document.querySelectorAll("#jobs tr.job")].some((tr) => tr.dataset.id === d), workflowJobId, wait);
  // Pages: 50 of queue `many`, the next 10, and back.
  await filter({ "f-queue": "many" });
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr.job").length === 50, null, wait);
  const firstIds = await ids();
  await page.locator("#next-page").click();
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr.job").length === 10, null, wait);
  const secondIds = await ids();
  if (secondIds.some((id) => firstIds.includes(id)) || Math.min(...firstIds.map(Number)) <= Math.max(...secondIds.map(Number))) {
    fail(`the second page overlaps or precedes the first: ${firstIds} / ${secondIds}`);
  }
  if (!(await page.locator("#next-page").isDisabled())) fail("a last page offers a next one");
  await page.locator("#first-page").click();
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr.job").length === 50, null, wait);
  await filter({ "f-order": "oldest" });
  await page.waitForFunction(() => { const r = [...document.querySelectorAll("#jobs tr.job")].map((tr) => Number(tr.dataset.id)); return r.length > 2 && r.every((id, i) => i === 0 || r[i - 1] < id); }, null, wait);
  await filter({});

  // The job's detail: no markup from its args, attempts with the worker that ran them, a
  // timeline.
  await row.click();
  await page.locator("#action-retry").waitFor(wait);
  if (await page.locator("#detail img").count() !== 0 || dialogs.length) fail("a job's arguments were parsed as HTML");
  const attempt = page.locator("#detail table.attempts tr").nth(1);
  await attempt.waitFor(wait);
  const worker = await attempt.locator("td").nth(1).textContent();
  if (!worker) fail("the attempt does not name its worker");
  await page.locator("#detail ol.timeline li", { hasText: "failed" }).first().waitFor(wait);

  // A step of a workflow: the workflow's steps, indented, and its parent as a dependency.
  await filter({ "f-search": workflowJobId });
  await page.locator(`#jobs tr.job[data-id="${workflowJobId}"]`).click();
  await page.locator("#detail li.step").nth(2).waitFor(wait);
  const steps = await page.locator("#detail li.step").count();
  if (steps !== 3) fail(`the workflow shows ${steps} steps, not 3`);
  await page.locator(`#detail li.step.current[data-id="${workflowJobId}"]`).waitFor(wait);
  await page.locator("#detail button.dep-parent").first().waitFor(wait);
  await page.locator("#detail-section").screenshot({ path: `${shots}/job.png` });

  // Retry the failed job from its detail.
  await filter({});
  await row.click();
  await page.locator("#detail strong", { hasText: `job ${jobId} ·` }).waitFor(wait);
  await page.locator("#action-retry").click();
  await page.locator("#message.ok", { hasText: "retry: done" }).waitFor(wait);

  // Bulk: tick the failed job of queue `bulk` and retry it; then delete every job of that
  // queue through the filter.
  await filter({ "f-queue": "bulk" });
  const doomed = page.locator(`#jobs tr.job[data-id="${doomedId}"]`);
  await doomed.waitFor(wait);
  await doomed.locator("input.tick").check();
  await page.locator("#picked-count", { hasText: "1 ticked" }).waitFor(wait);
  await page.locator('#bulk button[data-scope="picked"][data-action="retry"]').click();
  await page.locator("#question", { hasText: "retry 1 job (ticked)?" }).waitFor(wait);
  await page.locator("#yes").click();
  await page.locator("#message.ok", { hasText: "1 retried" }).waitFor(wait);
  const retried = await api(`/api/jobs/${doomedId}`);
  if (retried.state !== "available") fail(`the ticked job is ${retried.state} after the bulk retry`);
  // Cancel it from its detail, then delete it with every job of the filter.
  await doomed.click();
  await page.locator("#detail strong", { hasText: `job ${doomedId} ·` }).waitFor(wait);
  await page.locator("#action-cancel").click();
  await page.locator("#message.ok", { hasText: "cancel: done" }).waitFor(wait);
  if ((await api(`/api/jobs/${doomedId}`)).state !== "cancelled") fail("the detail's cancel did not cancel the job");
  await page.locator('#bulk button[data-scope="filter"][data-action="delete"]').click();
  await page.locator("#question", { hasText: "delete 1 job (all the filter selects)?" }).waitFor(wait);
  await page.locator("#yes").click();
  await page.locator("#message.ok", { hasText: "1 deleted" }).waitFor(wait);
  await page.locator("#jobs td", { hasText: "no job matches" }).waitFor(wait);

  // Queues: the activity of queue `bulk` (one attempt, failed for good, drained by the
  // test) with its wait percentiles; then pause, limit and resume queue `default`.
  const bulkQueue = page.locator('#queues tr.queue[data-queue="bulk"]');
  await bulkQueue.waitFor(wait);
  if (!(await bulkQueue.locator("td.p95").textContent()).endsWith("ms") && !(await bulkQueue.locator("td.p95").textContent()).endsWith(" s")) {
    fail("queue bulk shows no wait percentile");
  }
  const queue = page.locator('#queues tr.queue[data-queue="default"]');
  const info = async () => (await api("/api/queues")).queues.find((q) => q.name === "default");
  await queue.locator("button.pause").click();
  await queue.locator("button.resume").waitFor(wait);
  if (!(await info()).paused) fail("the page's pause did not pause the queue");
  await queue.locator("input.limit").fill("3");
  await queue.locator("button.set-limit").click();
  await page.locator("#message.ok", { hasText: "queue default: limit done" }).waitFor(wait);
  if ((await info()).concurrency_limit !== 3) fail("the page's limit was not set");
  await queue.locator("button.resume").click();
  await queue.locator("button.pause").waitFor(wait);
  const after = await info();
  if (after.paused) fail("the page's resume did not resume the queue");
  // The workers: the server's own.
  await page.locator("#workers td", { hasText: '{"default":10}' }).waitFor(wait);

  await filter({});
  await page.locator("#jobs tr.job").first().waitFor(wait);
  await fits("the page after every action");
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // The system's dark mode: dark colours, and still no horizontal scrolling.
  await page.emulateMedia({ colorScheme: "dark" });
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  if (r + g + b > 150) fail(`in dark mode the page's background is ${background}`);
  await fits("the page in dark mode");
  await page.emulateMedia({ colorScheme: "light" });
  console.log(JSON.stringify({ retried: Number(jobId), queue: after, bulk_retried_then_deleted: Number(doomedId), workflow_steps: steps }));
} finally {
  await browser.close();
}
