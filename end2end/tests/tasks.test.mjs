// Tasks: an operator runs the sample registry's `countdown` goblin and watches its lines arrive over
// an EventSource before the task ends, then sees it succeed with exit code 0 (stdout and stderr told
// apart); a dry run shows the rendered command and runs nothing; Re-run starts it again; the history
// lists and filters the runs; an unsafe goblin offers an operator no Run button and asks an admin to
// confirm; and the same run, dry run and re-run work with JavaScript off through the plain forms.
// Runs after first-run.test.mjs: the admin whose session it saved invites an operator, who registers
// with a virtual passkey. The server must read config/goblins.yaml (scripts/test.sh starts it in the
// repository).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, addPasskeyAuthenticator, adminState, launch, watchErrors, within } from "../support/browser.mjs";

const TASK_URL = /\/tasks\/[0-9a-f-]{36}$/;
const OPERATOR = `otto-${Date.now().toString(36)}`;

let browser;
let admin;
let operator;
let page;
let errors;

/// Lines of the output, as [stream, text] pairs.
async function output(p) {
  return p.getByTestId("output-line").evaluateAll((lines) =>
    lines.map((l) => [l.dataset.stream, l.lastElementChild.textContent]),
  );
}

/// A goblin's card on /tasks.
function card(p, id) {
  return p.getByTestId(`goblin-${id}`);
}

before(async () => {
  browser = await launch();
  admin = await browser.newContext({ storageState: adminState() });

  // The admin invites an operator, who registers a passkey through the link.
  const resp = await admin.request.post(`${BASE_URL}/fn/admin/invite`, {
    form: { role: "operator", days: "1" },
    headers: { origin: new URL(BASE_URL).origin, accept: "application/json" },
  });
  assert.equal(resp.status(), 200, await resp.text());
  const link = await resp.json();
  operator = await browser.newContext();
  page = await operator.newPage();
  errors = watchErrors(page);
  await addPasskeyAuthenticator(page);
  await page.goto(link);
  await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
  await page.getByLabel("Username").fill(OPERATOR);
  await page.getByLabel("Display name").fill("Otto Operator");
  await within(20_000, "operator registration", Promise.all([
    page.waitForURL(`${BASE_URL}/`, { timeout: 20_000 }),
    page.getByTestId("setup-submit").click(),
  ]));
  assert.match(await page.getByTestId("signed-in-as").textContent(), /Otto Operator\s*operator/);
});
after(async () => {
  await browser?.close();
});

describe("tasks", () => {
  test("an operator runs a goblin and watches its output arrive live", async () => {
    await page.getByRole("link", { name: "Tasks", exact: true }).click();
    await page.waitForURL(`${BASE_URL}/tasks`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    // The unsafe goblin is listed, but its Run button is for admins.
    assert.equal(await card(page, "restart-service").getByTestId("admins-only").count(), 1);
    assert.equal(await card(page, "restart-service").getByTestId("run").count(), 0);

    const countdown = card(page, "countdown");
    await countdown.getByTestId("task-text").fill("the moon");
    const followed = page.waitForRequest((r) => /\/api\/tasks\/[0-9a-f-]{36}\/events/.test(r.url()));
    await countdown.getByTestId("run").click();
    await page.waitForURL(TASK_URL);
    await followed;
    const task = page.getByTestId("task");
    await task.waitFor({ timeout: 10_000 });
    assert.notEqual(await task.getAttribute("data-status"), "succeeded", "the page opens before the task ends");

    // Lines arrive while the task is still running.
    const before = await page.getByTestId("output-line").count();
    await page.waitForFunction(
      (seen) =>
        document.querySelectorAll('[data-testid="output-line"]').length > seen &&
        document.querySelector('[data-testid="task"]')?.dataset.status === "running",
      before,
      { timeout: 10_000, polling: 50 },
    );
    assert.equal(await page.getByTestId("live").count(), 1);

    await page.locator('[data-testid="task"][data-status="succeeded"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("task-status").textContent(), "succeeded");
    assert.equal(await page.getByTestId("exit-code").textContent(), "0");
    assert.match(await page.getByTestId("duration").textContent(), /^\d+(\.\d)? s$/);
    assert.equal(await page.getByTestId("run-by").textContent(), OPERATOR);
    assert.notEqual(await page.getByTestId("finished-at").textContent(), "—");
    assert.deepEqual(await output(page), [
      ["stdout", "T-minus 6"],
      ["stdout", "T-minus 5"],
      ["stdout", "T-minus 4"],
      ["stdout", "T-minus 3"],
      ["stdout", "T-minus 2"],
      ["stdout", "T-minus 1"],
      ["stderr", "all systems go"],
      ["stdout", "Liftoff: the moon"],
    ]);
    const stderr = page.locator('[data-testid="output-line"][data-stream="stderr"]');
    assert.equal(await stderr.locator("span").first().textContent(), "err", "stderr is labelled, not only coloured");
    assert.equal(await page.getByTestId("live").count(), 0);
    assert.equal(await page.getByTestId("cancel").count(), 0);
  });

  test("Re-run starts the same goblin again as a new task", async () => {
    const first = page.url();
    await page.getByTestId("rerun").click();
    await page.waitForURL((url) => TASK_URL.test(url.pathname) && url.href !== first);
    const id = new URL(page.url()).pathname.split("/").pop();
    await page.locator(`[data-testid="task"][data-id="${id}"][data-status="succeeded"]`).waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("task-text").textContent(), "the moon");
    assert.deepEqual((await output(page)).at(-1), ["stdout", "Liftoff: the moon"]);
  });

  test("a dry run shows the rendered command and runs nothing", async () => {
    await page.goto(`${BASE_URL}/tasks`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    const countdown = card(page, "countdown");
    await countdown.getByTestId("task-text").fill("a dry one");
    await countdown.getByTestId("dry-run").click();
    await page.waitForURL(TASK_URL);
    await page.locator('[data-testid="task"][data-status="dry_run"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("task-status").textContent(), "dry run");
    const lines = await output(page);
    assert.deepEqual(lines[0], ["system", "Dry run: nothing was executed."]);
    assert.ok(lines.some(([, l]) => l.startsWith("command: /bin/sh -c 'for n in 6 5 4 3 2 1;")), JSON.stringify(lines));
    assert.ok(lines.some(([, l]) => l === "GOBLIN_TASK: 'a dry one'"), JSON.stringify(lines));
    assert.ok(lines.every(([stream]) => stream === "system"), "nothing ran, so nothing printed");
    assert.equal(await page.getByTestId("exit-code").textContent(), "—");
  });

  test("the history lists the runs and filters them", async () => {
    await page.goto(`${BASE_URL}/tasks`);
    const history = page.getByTestId("history-table");
    await history.waitFor({ timeout: 10_000 });
    assert.ok((await history.locator('[data-testid="task-row"][data-status="succeeded"]').count()) >= 2);
    await page.getByTestId("history-filter").getByLabel(/^Status/).selectOption("dry_run");
    await Promise.all([page.waitForURL(/status=dry_run/), page.getByTestId("history-filter-submit").click()]);
    const rows = page.getByTestId("history-table").getByTestId("task-row");
    assert.ok((await rows.count()) >= 1);
    for (const status of await rows.evaluateAll((r) => r.map((row) => row.dataset.status))) {
      assert.equal(status, "dry_run");
    }
  });

  test("an unsafe goblin runs only for an admin who ticks the box", async () => {
    const p = await admin.newPage();
    const adminErrors = watchErrors(p);
    await p.goto(`${BASE_URL}/tasks`);
    await p.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    const unsafe = card(p, "restart-service");
    await unsafe.getByTestId("task-text").fill("cache");
    await unsafe.getByTestId("run").click();
    assert.equal(new URL(p.url()).pathname, "/tasks", "not sent without the box ticked");
    await unsafe.getByTestId("confirm").check();
    await unsafe.getByTestId("run").click();
    await p.waitForURL(TASK_URL);
    await p.locator('[data-testid="task"][data-status="succeeded"]').waitFor({ timeout: 20_000 });
    assert.deepEqual(await output(p), [
      ["stdout", "Would restart service cache (demonstration: nothing was restarted)"],
    ]);
    assert.deepEqual(adminErrors, []);
    await p.close();
  });

  test("without JavaScript the forms run, dry-run and re-run, and the page shows how it ended", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: await operator.storageState() });
    const p = await noJs.newPage();
    await p.goto(`${BASE_URL}/tasks`);
    await card(p, "countdown").getByTestId("task-text").fill("mars");
    await Promise.all([p.waitForURL(TASK_URL, { timeout: 20_000 }), card(p, "countdown").getByTestId("run").click()]);
    // The post waits a few seconds for a quick task; a slower one's page reloads itself until it ends.
    await p.locator('[data-testid="task"][data-status="succeeded"]').waitFor({ timeout: 20_000 });
    assert.equal(await p.locator("[data-hydrated]").getAttribute("data-hydrated"), "false");
    assert.equal(await p.getByTestId("exit-code").textContent(), "0");
    assert.equal(await p.getByTestId("run-by").textContent(), OPERATOR);
    const lines = await output(p);
    assert.equal(lines.length, 8);
    assert.deepEqual(lines.at(-2), ["stderr", "all systems go"]);
    assert.deepEqual(lines.at(-1), ["stdout", "Liftoff: mars"]);

    const first = p.url();
    await Promise.all([p.waitForURL((url) => url.href !== first && TASK_URL.test(url.pathname), { timeout: 20_000 }), p.getByTestId("rerun").click()]);
    await p.locator('[data-testid="task"][data-status="succeeded"]').waitFor({ timeout: 20_000 });
    assert.deepEqual((await output(p)).at(-1), ["stdout", "Liftoff: mars"]);

    await p.goto(`${BASE_URL}/tasks`);
    await card(p, "hello").getByTestId("task-text").fill("Ada");
    await Promise.all([p.waitForURL(TASK_URL), card(p, "hello").getByTestId("dry-run").click()]);
    assert.equal(await p.getByTestId("task").getAttribute("data-status"), "dry_run");
    assert.ok((await output(p)).some(([, l]) => l.startsWith("command: /bin/sh -c 'printf")));
    await noJs.close();
  });

  test("no errors surfaced in the page", () => {
    assert.deepEqual(errors, []);
  });
});
