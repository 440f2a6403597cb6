// The home page, twice: with JavaScript off (server-rendered HTML and plain forms must be enough) and
// with it on (the page hydrates and "Refresh" re-checks in place).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, watchErrors } from "../support/browser.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

describe("home page without JavaScript", () => {
  test("renders the live health report and refreshes through its form", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const resp = await page.goto(`${BASE_URL}/`);
    assert.equal(resp.status(), 200);
    assert.equal(await page.title(), "Home · Goblin Assistant");
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "System health");
    assert.equal(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Home" }).count(), 1);
    const db = page.getByTestId("component-database");
    assert.match(await db.textContent(), /up/);
    assert.equal(await page.getByTestId("overall").getAttribute("data-healthy"), "true");
    // Nothing ran in the page.
    assert.equal(await page.locator("[data-hydrated]").getAttribute("data-hydrated"), "false");

    const first = await page.getByTestId("checked-at").getAttribute("datetime");
    await Promise.all([page.waitForURL(/\/\?$|\/$/), page.getByRole("button", { name: "Refresh" }).click()]);
    await page.getByTestId("checked-at").waitFor();
    const second = await page.getByTestId("checked-at").getAttribute("datetime");
    assert.notEqual(second, first, "the form submission loaded a new report");
    await context.close();
  });

  test("unknown paths get the 404 page inside the layout", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const resp = await page.goto(`${BASE_URL}/no-such-page`);
    assert.equal(resp.status(), 404);
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Page not found");
    assert.equal(await page.getByRole("banner").count(), 1);
    await context.close();
  });
});

describe("home page with JavaScript", () => {
  test("hydrates, and Refresh re-checks without reloading the page", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${BASE_URL}/`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });

    // A marker that a page reload would wipe out.
    await page.evaluate(() => {
      window.__goblinMarker = "still here";
    });
    const checkedAt = page.getByTestId("checked-at");
    const first = await checkedAt.getAttribute("datetime");
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForFunction(
      (before) => document.querySelector('[data-testid="checked-at"]')?.getAttribute("datetime") !== before,
      first,
      { timeout: 10_000 },
    );
    assert.equal(await page.evaluate(() => window.__goblinMarker), "still here", "no reload happened");
    assert.match(await page.getByTestId("component-database").textContent(), /up/);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
