// Admin → Monitoring: an admin starts Raptor, sees its samples and the log tail, raises the demo
// error and finds it in the exceptions list with its context, then stops Raptor; the same with
// JavaScript off through plain forms. The home page shows its cards and charts. Runs after
// first-run.test.mjs, whose admin session it reuses. It leaves Raptor stopped.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, adminState, asAdmin } from "../support/browser.mjs";

let browser;
let context;
let page;
let errors;

before(async () => {
  ({ browser, context, page, errors } = await asAdmin());
});
after(async () => {
  await browser?.close();
});

/// Clicks a plain form's submit button and waits for the page the server redirects back to.
async function submitAndReturn(p, button) {
  const path = new URL(p.url()).pathname;
  await Promise.all([
    p.waitForResponse((r) => r.request().method() === "GET" && new URL(r.url()).pathname === path),
    button.click(),
  ]);
  await p.waitForLoadState();
}

describe("monitoring", () => {
  test("an admin starts Raptor, sees samples and the log, raises the demo error and finds it", async () => {
    await page.goto(`${BASE_URL}/admin/monitoring`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Monitoring");

    await page.getByLabel("Sample every (ms)").fill("200");
    await page.getByTestId("raptor-start").click();
    await page.locator('[data-testid="raptor-state"][data-running="true"]').waitFor({ timeout: 10_000 });
    // The page refreshes itself while Raptor runs; the chart fills with samples.
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid="raptor-samples"]')?.dataset.count ?? 0) >= 3,
      null,
      { timeout: 20_000 },
    );
    assert.match(await page.getByTestId("latest-sample").textContent(), /process CPU .*memory .* MB/);
    assert.equal(await page.getByTestId("raptor-samples").locator("svg rect").count() >= 3, true);

    // The log's level is a GET form: info shows the samples.
    await page.getByTestId("log-level").selectOption("info");
    await page.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(/level=info/);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await page.waitForFunction(
      () => (document.querySelector('[data-testid="log-tail"]')?.textContent ?? "").includes('"kind":"sample"'),
      null,
      { timeout: 10_000 },
    );

    await page.getByTestId("raptor-demo").click();
    await page.getByTestId("demo-result").filter({ hasText: "the demo error was raised" }).waitFor({ timeout: 10_000 });
    const row = page.getByTestId("exception-row").filter({ hasText: "raptor demo: boom" }).first();
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.getAttribute("data-kind"), "error");
    await row.locator("summary").click();
    const detail = await row.textContent();
    assert.match(detail, /POST \/fn\/admin\/raptor-demo/, detail);
    assert.match(detail, /raptor_demo/, "the span it was raised in");
    assert.match(detail, /Request id/);

    // The error is in the log too, at level error.
    await page.goto(`${BASE_URL}/admin/monitoring?level=error`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId("log-tail").textContent(), /raptor demo: boom/);

    await page.getByTestId("raptor-stop").click();
    await page.locator('[data-testid="raptor-state"][data-running="false"]').waitFor({ timeout: 10_000 });
  });

  test("without JavaScript, Raptor starts and stops through plain forms and the lists render", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
    const p = await noJs.newPage();
    const resp = await p.goto(`${BASE_URL}/admin/monitoring`);
    assert.equal(resp.status(), 200);
    if ((await p.getByTestId("raptor-state").getAttribute("data-running")) === "true") {
      await submitAndReturn(p, p.getByTestId("raptor-stop"));
    }
    assert.equal(await p.getByTestId("raptor-state").getAttribute("data-running"), "false");
    await submitAndReturn(p, p.getByTestId("raptor-start"));
    assert.equal(await p.getByTestId("raptor-state").getAttribute("data-running"), "true");
    await new Promise((r) => setTimeout(r, 1_500));
    await p.goto(`${BASE_URL}/admin/monitoring?level=info`);
    assert.match(await p.getByTestId("log-tail").textContent(), /"kind":"sample"/);
    await submitAndReturn(p, p.getByTestId("raptor-demo"));
    assert.ok((await p.getByTestId("exception-row").filter({ hasText: "raptor demo: boom" }).count()) >= 1);
    await submitAndReturn(p, p.getByTestId("raptor-stop"));
    assert.equal(await p.getByTestId("raptor-state").getAttribute("data-running"), "false");
    await noJs.close();
  });

  test("the home page shows its cards and charts, with JavaScript and without", async () => {
    await page.goto(`${BASE_URL}/`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    for (const id of ["card-api", "card-providers", "card-tasks", "card-spend", "chart-requests", "chart-spend", "chart-tasks"]) {
      await page.getByTestId(id).waitFor({ timeout: 10_000 });
    }
    assert.match(await page.getByTestId("providers-healthy").textContent(), /^\d+ of \d+$/);
    assert.match(await page.getByTestId("spend-today").textContent(), /^\$\d/);

    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
    const p = await noJs.newPage();
    assert.equal((await p.goto(`${BASE_URL}/`)).status(), 200);
    assert.ok(await p.getByTestId("card-spend").isVisible());
    assert.ok(await p.getByTestId("chart-requests").isVisible());
    await noJs.close();
  });

  test("no errors surfaced in the page", () => {
    assert.deepEqual(errors, []);
  });
});
