// Admin → Providers against the mock upstream: an admin adds a provider with a key, sees only its
// mask, and "Test connection" succeeds; the same works with JavaScript off through plain forms; a
// delete needs its confirmation box; settings change from their page. Runs after first-run.test.mjs,
// whose admin session it reuses.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, adminState, asAdmin } from "../support/browser.mjs";

const MOCK_URL = process.env.GOBLIN_MOCK_URL;
const MOCK_KEY = process.env.GOBLIN_MOCK_KEY;

let browser;
let context;
let page;
let errors;

before(async () => {
  assert.ok(MOCK_URL && MOCK_KEY, "GOBLIN_MOCK_URL and GOBLIN_MOCK_KEY must name the running mock upstream");
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

async function noJsPage() {
  const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
  return [noJs, await noJs.newPage()];
}

describe("providers", () => {
  test("an admin adds a provider with a key, sees it masked, and the connection test succeeds", async () => {
    await page.goto(`${BASE_URL}/admin/providers`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await page.getByLabel("Name", { exact: true }).fill("mock-openai");
    await page.getByLabel("Kind", { exact: true }).selectOption("openai");
    await page.getByLabel(/^Base URL/).fill(`${MOCK_URL}/openai/v1`);
    await page.getByLabel(/^API key/).fill(MOCK_KEY);
    await page.getByTestId("add-provider").click();
    await page.getByTestId("provider-mock-openai").waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId("provider-mock-openai").textContent(), /1 of 1 enabled/);
    await page.getByTestId("new-provider-link").click();
    await page.waitForURL(/\/admin\/providers\/[0-9a-f-]{36}$/);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });

    const mask = (await page.getByTestId("key-mask").first().textContent()).trim();
    assert.match(mask, /^sk-\.\.\.[A-Za-z0-9]{4}$/);
    assert.ok(MOCK_KEY.endsWith(mask.slice(-4)));
    assert.ok(!(await page.content()).includes(MOCK_KEY), "the key itself is nowhere in the page");

    await page.getByTestId("test-connection").click();
    const result = page.getByTestId("check-result");
    await result.waitFor({ timeout: 15_000 });
    assert.equal(await result.getAttribute("data-ok"), "true", await result.textContent());
    assert.match(await result.textContent(), /Connection works: connected; \d+ models listed/);
    await page.getByTestId("check-list").locator("li").first().waitFor({ timeout: 10_000 });
  });

  test("without JavaScript, a provider is added and tested through plain forms", async () => {
    const [noJs, p] = await noJsPage();
    await p.goto(`${BASE_URL}/admin/providers`);
    await p.getByLabel("Name", { exact: true }).fill("mock-anthropic");
    await p.getByLabel("Kind", { exact: true }).selectOption("anthropic");
    await p.getByLabel(/^Base URL/).fill(`${MOCK_URL}/anthropic/v1`);
    await p.getByLabel(/^API key/).fill(MOCK_KEY);
    await submitAndReturn(p, p.getByTestId("add-provider"));
    const row = p.getByTestId("provider-mock-anthropic");
    assert.match(await row.textContent(), /never checked/);
    await Promise.all([p.waitForURL(/\/admin\/providers\/[0-9a-f-]{36}$/), row.getByRole("link").click()]);
    assert.ok(!(await p.content()).includes(MOCK_KEY));
    await submitAndReturn(p, p.getByTestId("test-connection"));
    assert.match(await p.getByTestId("last-check").textContent(), /Last check: ok · \d+ ms · connected/);

    // Deleting asks first: without the box ticked the browser will not send the form.
    const del = p.getByRole("button", { name: "Delete provider" });
    const before = p.url();
    await del.click();
    assert.equal(p.url(), before, "nothing was sent");
    assert.equal(await p.getByTestId("provider-missing").count(), 0);
    await p.getByLabel(/yes, delete this provider/).check();
    await submitAndReturn(p, del);
    assert.match(await p.getByTestId("provider-missing").textContent(), /no such provider/);
    await noJs.close();
  });

  test("settings change from their page, with and without JavaScript", async () => {
    await page.goto(`${BASE_URL}/admin/settings`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    const item = page.getByTestId("setting-providers-check_timeout_seconds");
    await item.getByRole("spinbutton").fill("7");
    await item.getByRole("button", { name: "Save" }).click();
    await item.getByText(/changed .* default 10/).waitFor({ timeout: 10_000 });

    const [noJs, p] = await noJsPage();
    await p.goto(`${BASE_URL}/admin/settings`);
    const off = p.getByTestId("setting-tasks-allow_custom_scripts");
    await off.getByRole("combobox").selectOption("true");
    await submitAndReturn(p, off.getByRole("button", { name: "Save" }));
    assert.match(await p.getByTestId("setting-tasks-allow_custom_scripts").textContent(), /changed .* default false/);
    await noJs.close();
  });

  test("no errors surfaced in the page", () => {
    assert.deepEqual(errors, []);
  });
});
