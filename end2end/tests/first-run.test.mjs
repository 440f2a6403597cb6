// A new server from the first visit on: pages send a visitor to sign-in (JavaScript off too); the
// one-time setup link lets the first person register a passkey and become admin; the home page shows
// live health and hydrates; sign-out ends the session; a usernameless passkey sign-in gets back in;
// the setup link cannot be used twice. Steps run in order and share one browser.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, addPasskeyAuthenticator, launch, watchErrors, within } from "../support/browser.mjs";

const SETUP_URL = process.env.GOBLIN_SETUP_URL;

let browser;
let context;
let page;
let errors;
let laptop;

before(async () => {
  assert.ok(SETUP_URL, "GOBLIN_SETUP_URL must hold the link the server printed");
  browser = await launch();
  context = await browser.newContext();
  page = await context.newPage();
  errors = watchErrors(page);
  laptop = await addPasskeyAuthenticator(page);
});
after(async () => {
  await browser?.close();
});

describe("first run, sign-in and the home page", () => {
  test("without JavaScript, pages redirect to sign-in", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    const p = await noJs.newPage();
    for (const path of ["/", "/no-such-page"]) {
      await p.goto(`${BASE_URL}${path}`);
      assert.equal(new URL(p.url()).pathname, "/signin", path);
    }
    assert.equal(await p.getByRole("heading", { level: 1 }).textContent(), "Sign in");
    await noJs.close();
  });

  test("the setup link registers a passkey and signs the first admin in", async () => {
    await page.goto(SETUP_URL);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await page.getByLabel("Username").fill("ada");
    await page.getByLabel("Display name").fill("Ada Admin");
    await page.getByLabel("Passkey name").fill("Laptop");
    await within(20_000, "passkey registration", Promise.all([
      page.waitForURL(`${BASE_URL}/`, { timeout: 20_000 }),
      page.getByTestId("setup-submit").click(),
    ]));
    assert.match(await page.getByTestId("signed-in-as").textContent(), /Ada Admin/);
    assert.match(await page.getByTestId("signed-in-as").textContent(), /admin/);
    const held = await laptop.credentials();
    assert.equal(held.length, 1);
    assert.equal(held[0].isResidentCredential, true, "a discoverable passkey, for usernameless sign-in");
  });

  test("home hydrates, and Refresh re-checks without reloading the page", async () => {
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await page.evaluate(() => {
      window.__goblinMarker = "still here";
    });
    const first = await page.getByTestId("checked-at").getAttribute("datetime");
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForFunction(
      (before) => document.querySelector('[data-testid="checked-at"]')?.getAttribute("datetime") !== before,
      first,
      { timeout: 10_000 },
    );
    assert.equal(await page.evaluate(() => window.__goblinMarker), "still here", "no reload happened");
    assert.match(await page.getByTestId("component-database").textContent(), /up/);
  });

  test("without JavaScript, the signed-in home renders and its Refresh form works", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: await context.storageState() });
    const p = await noJs.newPage();
    const resp = await p.goto(`${BASE_URL}/`);
    assert.equal(resp.status(), 200);
    assert.equal(await p.title(), "Home · Goblin Assistant");
    assert.equal(await p.getByRole("heading", { level: 1 }).textContent(), "System health");
    assert.equal(await p.getByTestId("overall").getAttribute("data-healthy"), "true");
    assert.equal(await p.locator("[data-hydrated]").getAttribute("data-hydrated"), "false");
    const first = await p.getByTestId("checked-at").getAttribute("datetime");
    await Promise.all([p.waitForURL(/\/\?$|\/$/), p.getByRole("button", { name: "Refresh" }).click()]);
    assert.notEqual(await p.getByTestId("checked-at").getAttribute("datetime"), first);
    const notFound = await p.goto(`${BASE_URL}/no-such-page`);
    assert.equal(notFound.status(), 404);
    assert.equal(await p.getByRole("heading", { level: 1 }).textContent(), "Page not found");
    await noJs.close();
  });

  test("sign-out ends the session", async () => {
    await Promise.all([
      page.waitForURL(`${BASE_URL}/signin`, { timeout: 10_000 }),
      page.getByRole("button", { name: "Sign out" }).click(),
    ]);
    await page.goto(`${BASE_URL}/`);
    assert.equal(new URL(page.url()).pathname, "/signin");
  });

  test("a usernameless passkey sign-in gets back in", async () => {
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await within(20_000, "passkey sign-in", Promise.all([
      page.waitForURL(`${BASE_URL}/`, { timeout: 20_000 }),
      page.getByTestId("signin-passkey").click(),
    ]));
    assert.match(await page.getByTestId("signed-in-as").textContent(), /Ada Admin/);
  });

  test("a second passkey, on another device, can be added and used to sign in", async () => {
    await page.goto(`${BASE_URL}/account`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("passkey-list").locator("li").count(), 1);
    // The laptop already holds a passkey for this account (and is excluded); use a phone instead.
    await laptop.remove();
    const phone = await addPasskeyAuthenticator(page);
    await page.getByLabel("New passkey name").fill("Phone");
    await within(20_000, "adding a passkey", page.getByTestId("add-passkey").click());
    await page.getByTestId("passkey-message").filter({ hasText: "Passkey added." }).waitFor({ timeout: 20_000 });
    await page.getByTestId("passkey-list").locator("li").nth(1).waitFor({ timeout: 10_000 });
    assert.equal((await phone.credentials()).length, 1);

    await Promise.all([
      page.waitForURL(`${BASE_URL}/signin`, { timeout: 10_000 }),
      page.getByRole("button", { name: "Sign out" }).click(),
    ]);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await within(20_000, "sign-in with the phone", Promise.all([
      page.waitForURL(`${BASE_URL}/`, { timeout: 20_000 }),
      page.getByTestId("signin-passkey").click(),
    ]));
    assert.match(await page.getByTestId("signed-in-as").textContent(), /Ada Admin/);
  });

  test("an admin invites a viewer, who registers through the link and cannot reach admin", async () => {
    await page.goto(`${BASE_URL}/admin`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await page.getByTestId("create-invite").click();
    const link = (await page.getByTestId("invite-link").textContent({ timeout: 10_000 })).trim();
    assert.match(link, /\/invite\?token=/);

    const guest = await browser.newContext();
    const g = await guest.newPage();
    const guestErrors = watchErrors(g);
    await addPasskeyAuthenticator(g);
    await g.goto(link);
    await g.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    assert.equal(await g.getByRole("heading", { level: 1 }).textContent(), "Create your account");
    await g.getByLabel("Username").fill("vera");
    await g.getByLabel("Display name").fill("Vera Viewer");
    await within(20_000, "invitee registration", Promise.all([
      g.waitForURL(`${BASE_URL}/`, { timeout: 20_000 }),
      g.getByTestId("setup-submit").click(),
    ]));
    assert.match(await g.getByTestId("signed-in-as").textContent(), /Vera Viewer\s*viewer/);
    assert.equal(await g.getByRole("link", { name: "Admin" }).count(), 0, "no Admin link for a viewer");

    const resp = await g.goto(`${BASE_URL}/admin`);
    assert.equal(resp.status(), 403);
    await g.goto(`${BASE_URL}/`);
    const status = await g.evaluate(() => fetch("/fn/admin/users", { method: "POST" }).then((r) => r.status));
    assert.equal(status, 403, "admin functions refuse a viewer");
    assert.deepEqual(guestErrors.filter((e) => !e.includes("403")), []);
    await guest.close();

    // The admin sees the new account.
    await page.goto(`${BASE_URL}/admin`);
    await page.getByTestId("user-vera").waitFor({ timeout: 10_000 });
  });

  test("the setup link works only once", async () => {
    const other = await browser.newContext();
    const p = await other.newPage();
    await addPasskeyAuthenticator(p);
    await p.goto(SETUP_URL);
    await p.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    await p.getByLabel("Username").fill("mallory");
    await p.getByLabel("Display name").fill("Mallory");
    await p.getByTestId("setup-submit").click();
    await p.getByTestId("setup-message").filter({ hasText: /already/ }).waitFor({ timeout: 10_000 });
    await other.close();
  });

  test("no errors surfaced in the page", () => {
    assert.deepEqual(errors, []);
  });

  test("the admin's session is kept for the next test files", async () => {
    if (process.env.GOBLIN_E2E_STATE) await context.storageState({ path: process.env.GOBLIN_E2E_STATE });
  });
});
