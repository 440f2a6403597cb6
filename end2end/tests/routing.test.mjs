// Admin → Routing: an admin adds an alias, saves its policy (a refused value shows its rule), sees its
// target in the health table and deletes it after ticking the box; the same with JavaScript off
// through plain forms, plus the request log's GET filter. Runs after first-run.test.mjs, whose admin
// session it reuses, and uses the provider the environment seeded (`openai`, on the mock upstream).
// It leaves no alias behind.
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

async function addAlias(p, alias, model) {
  const form = p.getByTestId("add-alias-form");
  await form.getByLabel(/^Alias/).fill(alias);
  await form.getByLabel(/^First target: provider/).selectOption({ label: "openai" });
  await form.getByLabel(/^Model/).fill(model);
}

/// Opens an alias card's policy editor (a `<details>`), whatever state it is in.
async function openPolicy(card) {
  const details = card.locator("details").filter({ has: card.page().locator("summary", { hasText: "Policy" }) });
  if (!(await details.evaluate((d) => d.open))) await details.locator("summary").click();
}

describe("routing", () => {
  test("an admin adds an alias, saves its policy, sees its health, and deletes it", async () => {
    await page.goto(`${BASE_URL}/admin/routing`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await addAlias(page, "e2e-fast", "gpt-4o-mini");
    await page.getByTestId("add-alias").click();
    const card = page.getByTestId("alias-e2e-fast");
    await card.waitFor({ timeout: 10_000 });
    assert.match(await card.getByTestId("alias-summary").textContent(), /1 target · .*the gateway's defaults apply/);
    await page.getByTestId("health-openai-gpt-4o-mini").waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("health-openai-gpt-4o-mini").getByTestId("breaker").getAttribute("data-state"), "closed");

    await openPolicy(card);
    await card.getByLabel(/^Strategy/).selectOption("cost");
    await card.getByLabel(/^Budget|^US dollars/).fill("25");
    await card.getByRole("button", { name: "Save policy" }).click();
    await card.getByTestId("alias-summary").filter({ hasText: "strategy cost · policy saved" }).waitFor({ timeout: 10_000 });
    assert.match(await card.getByTestId("alias-budget").textContent(), /\$25 per month, then refuse\./);

    // A refused value: the card says which field and which rule, and nothing changes.
    await openPolicy(card);
    await card.getByLabel(/^Deadline/).fill("1000");
    await card.getByRole("button", { name: "Save policy" }).click();
    await card.getByTestId("alias-error").filter({ hasText: "deadline (ms): must be at least the attempt timeout" }).waitFor({ timeout: 10_000 });
    assert.match(await card.getByTestId("alias-summary").textContent(), /strategy cost/);

    // Deleting asks first.
    const del = card.getByRole("button", { name: "Delete alias" });
    await del.click();
    assert.equal(await page.getByTestId("alias-e2e-fast").count(), 1, "not sent without the box ticked");
    await card.getByLabel(/yes, delete this alias/).check();
    await del.click();
    await page.getByTestId("no-aliases").waitFor({ timeout: 10_000 });
  });

  test("without JavaScript, plain forms add, refuse and delete, and the log filters by GET", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
    const p = await noJs.newPage();
    await p.goto(`${BASE_URL}/admin/routing`);

    await addAlias(p, "openai", "gpt-4o-mini");
    await submitAndReturn(p, p.getByTestId("add-alias"));
    assert.match(await p.getByTestId("add-alias-error").textContent(), /alias: 'openai' is the name of a provider/);

    await p.goto(`${BASE_URL}/admin/routing`);
    await addAlias(p, "e2e-plain", "gpt-4o-mini");
    await submitAndReturn(p, p.getByTestId("add-alias"));
    const card = p.getByTestId("alias-e2e-plain");
    assert.match(await card.getByTestId("target-list").textContent(), /openai \/ gpt-4o-mini/);

    // The log's filter is a GET form: the choice lands in the URL and stays selected.
    const filter = p.getByTestId("log-filter");
    await filter.getByLabel(/^Status/).selectOption("error");
    await Promise.all([p.waitForURL(/status=error/), filter.getByTestId("log-filter-submit").click()]);
    assert.equal(await p.getByTestId("log-filter").getByLabel(/^Status/).inputValue(), "error");

    const del = p.getByTestId("alias-e2e-plain").getByRole("button", { name: "Delete alias" });
    const before = p.url();
    await del.click();
    assert.equal(p.url(), before, "nothing was sent without the box ticked");
    await p.getByTestId("alias-e2e-plain").getByLabel(/yes, delete this alias/).check();
    await submitAndReturn(p, del);
    assert.equal(await p.getByTestId("alias-e2e-plain").count(), 0);
    await noJs.close();
  });

  test("no errors surfaced in the page", () => {
    // The refused policy is answered 400, which the browser logs as a failed load: that one is expected.
    const refusals = errors.filter((e) => e.includes("the server responded with a status of 400"));
    assert.equal(refusals.length, 1, errors.join("\n"));
    assert.deepEqual(errors.filter((e) => !refusals.includes(e)), []);
  });
});
