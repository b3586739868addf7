// Loads the dashboard in real headless Chromium, checks that a job appears (and that its
// arguments are shown as text, never parsed as HTML), retries it through the page, pauses,
// limits and resumes its queue through the page, deletes the failed jobs of queue `bulk`
// through the bulk form (count, then a confirmation naming it), and takes a screenshot.
//
// usage: node dashboard.mjs <base-url> <admin-token> <job-id> <screenshot.png> <workflow-job-id>
import { chromium } from "playwright-core";

const [base, token, jobId, screenshot, workflowJobId] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${base}/dashboard`);
  await page.fill("#token", token);
  await page.dispatchEvent("#token", "change");

  const row = page.locator(`#recent tr.job[data-id="${jobId}"]`);
  await row.waitFor({ timeout: 20000 });
  await page.locator(`#failures tr.job[data-id="${jobId}"]`).waitFor({ timeout: 20000 });
  await row.click();
  await page.locator("#action-retry").waitFor({ timeout: 10000 });
  if (await page.locator("#detail img").count() !== 0 || dialogs.length) {
    throw new Error("a job's arguments were parsed as HTML");
  }
  // A step of a workflow: its detail lists the workflow's steps, indented, with states.
  await page.locator(`#recent tr.job[data-id="${workflowJobId}"]`).click();
  await page.locator("#detail li.step").nth(2).waitFor({ timeout: 10000 });
  const steps = await page.locator("#detail li.step").count();
  if (steps !== 3) throw new Error(`the workflow shows ${steps} steps, not 3`);
  await page.locator(`#detail li.step.current[data-id="${workflowJobId}"]`).waitFor({ timeout: 10000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  await row.click();
  await page.locator("#detail strong", { hasText: `job ${jobId} ·` }).waitFor({ timeout: 10000 });
  await page.locator("#action-retry").click();
  await page.locator("#message.ok").waitFor({ timeout: 10000 });

  // The queue's row: pause it, give it a limit, resume it; the server must agree each time.
  const queue = page.locator('#queues tr.queue[data-queue="default"]');
  const api = async () => (await (await page.request.get(`${base}/dashboard/api/queues`)).json())
    .queues.find((q) => q.name === "default");
  await queue.locator("button.pause").click();
  await queue.locator("button.resume").waitFor({ timeout: 10000 });
  if (!(await api()).paused) throw new Error("the page's pause did not pause the queue");
  await queue.locator("input.limit").fill("3");
  await queue.locator("button.set-limit").click();
  for (let tries = 0; (await api()).concurrency_limit !== 3; tries++) {
    if (tries > 200) throw new Error("the page's limit was not set");
    await page.waitForTimeout(50);
  }
  await queue.locator("button.resume").click();
  await queue.locator("button.pause").waitFor({ timeout: 10000 });
  const after = await api();
  if (after.paused) throw new Error("the page's resume did not resume the queue");

  // Many jobs at once: count first, then confirm the count.
  await page.selectOption("#bulk-state", "failed");
  await page.fill("#bulk-queue", "bulk");
  await page.locator("#bulk-count").click();
  await page.locator("#bulk-matched", { hasText: "1 job selected" }).waitFor({ timeout: 10000 });
  await page.locator('#bulk-actions button[data-action="delete"]').click();
  await page.locator("#bulk-question", { hasText: "delete 1 job?" }).waitFor({ timeout: 10000 });
  await page.locator("#bulk-yes").click();
  await page.locator("#message.ok", { hasText: "1 deleted" }).waitFor({ timeout: 10000 });
  console.log(JSON.stringify({ retried: Number(jobId), queue: after, bulk_deleted: 1, workflow_steps: steps }));
} finally {
  await browser.close();
}
