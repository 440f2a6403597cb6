// Search: a collection is created; a document is uploaded with its progress shown; a query finds it
// with the match highlighted and a score; the chat, with the collection attached, cites the chunk and
// the citation opens the document's page with that chunk highlighted. Then the same upload and query
// work with JavaScript off, a refused file says why, and the collection is deleted after confirming.
// Hostile HTML in the document stays text everywhere. Runs after first-run.test.mjs, whose admin
// session (signed in with a virtual passkey authenticator) it reuses, and uses the `openai` provider
// the environment seeded on the mock upstream, which answers "Mock reply to: <the prompt>" (so the
// answer repeats the numbered sources, and their citations).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BASE_URL, adminState, asAdmin } from "../support/browser.mjs";

const NAME = `e2e-handbook-${process.pid}`;
const HOSTILE = '<img src=x onerror="window.__xss=1">';
const COLLECTION_URL = /\/search\/collections\/[0-9a-f-]{36}$/;

let browser;
let context;
let page;
let errors;
let dir;
let collectionUrl;
/// Every answer of 400 or more the page got: `status url`.
const failed = [];

function file(name, text) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "goblin-e2e-search-"));
  ({ browser, context, page, errors } = await asAdmin());
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
  });
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function hydrated(p) {
  await p.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
}

describe("search", () => {
  test("a collection is created from the Search page in the nav", async () => {
    await page.goto(`${BASE_URL}/`);
    await hydrated(page);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Search" }).click();
    await page.waitForURL(`${BASE_URL}/search`);
    await page.getByTestId("collection-name-input").fill(NAME);
    await page.getByTestId("create-collection").click();
    const link = page.getByTestId("collection-link").filter({ hasText: NAME });
    await link.waitFor({ timeout: 10_000 });
    await link.click();
    await page.waitForURL(COLLECTION_URL);
    collectionUrl = page.url();
    assert.equal(await page.getByTestId("collection-name").textContent(), NAME);
  });

  test("an upload shows its progress, and the document is listed", async () => {
    await hydrated(page);
    const path = file(
      "lanterns.md",
      `# Lanterns\n\nThe goblin lantern guild keeps every lantern lit with marsh gas, so a lantern burns with a blue flame. ${HOSTILE}\n`,
    );
    await page.getByTestId("upload-file").setInputFiles(path);
    await page.getByTestId("upload-form").getByTestId("document-title").fill("Lantern handbook");
    await page.getByTestId("upload-form").getByTestId("document-tags").fill("lanterns, e2e");
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/documents/upload") && r.request().method() === "POST"),
      page.getByTestId("upload-submit").click(),
    ]);
    assert.equal(resp.status(), 201, "sent in place to the JSON API");
    await page.getByTestId("upload-percent").filter({ hasText: "100%" }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("upload-progress").getAttribute("value"), "100");
    await page.getByTestId("upload-done").filter({ hasText: "Added 'Lantern handbook'." }).waitFor();
    await page.getByTestId("document-link").filter({ hasText: "Lantern handbook" }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("upload-error").textContent(), "");
  });

  test("a query finds it, with the match highlighted and a score; an empty query says so", async () => {
    await page.getByTestId("search-query").fill("blue flame");
    await Promise.all([page.waitForURL(/\?q=blue/), page.getByTestId("search-submit").click()]);
    const hit = page.getByTestId("hit").first();
    await hit.waitFor({ timeout: 10_000 });
    assert.equal(await hit.getByTestId("hit-title").textContent(), "Lantern handbook");
    const marks = await hit.locator("mark").allTextContents();
    assert.ok(marks.some((m) => /blue|flame/i.test(m)), `marked words: ${marks}`);
    assert.match(await hit.getByTestId("hit-score").textContent(), /^score \d+\.\d{3}$/);
    assert.match(await hit.getByTestId("hit-snippet").textContent(), /blue flame/);
    assert.equal(await page.locator("main img").count(), 0, "the document's HTML stays text");

    await hydrated(page);
    await page.getByTestId("search-query").fill("");
    await Promise.all([page.waitForURL(/\?q=$/), page.getByTestId("search-submit").click()]);
    assert.match(await page.getByTestId("search-error").textContent(), /query: must not be empty/);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  test("the chat, with the collection attached, cites the chunk, and the citation opens it", async () => {
    await page.goto(`${BASE_URL}/chat`);
    await hydrated(page);
    await page.getByTestId("model").selectOption("openai/gpt-4o-mini");
    await page.getByTestId("collection").selectOption({ label: NAME });
    await page.getByTestId("message").fill("What colour does a goblin lantern burn?");
    await page.getByTestId("send").click();
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    await page.locator('[data-testid="turn"][data-status="done"]').waitFor({ timeout: 15_000 });
    const turn = page.locator('[data-testid="turn"]').last();
    const source = turn.getByTestId("source-link");
    assert.equal(await source.count(), 1);
    assert.equal(await source.textContent(), "[1] Lantern handbook");
    const href = await source.getAttribute("href");
    assert.match(href, /^\/search\/collections\/[0-9a-f-]{36}\/documents\/[0-9a-f-]{36}#chunk-0$/);
    assert.ok(href.startsWith(new URL(collectionUrl).pathname), "the chunk is in the attached collection");
    // The answer's own [1] is a link to the same chunk.
    const cited = turn.getByTestId("answer").locator("a", { hasText: "[1]" }).first();
    assert.equal(await cited.getAttribute("href"), href);
    assert.equal(await page.locator("main img").count(), 0);

    await source.click();
    await page.waitForURL(/\/documents\/[0-9a-f-]{36}#chunk-0$/);
    await hydrated(page);
    const chunk = page.locator("#chunk-0");
    assert.match(await chunk.textContent(), /a lantern burns with a blue flame/);
    assert.match(await chunk.textContent(), /<img src=x onerror=/, "the hostile HTML shows as text");
    assert.equal(await page.evaluate(() => document.querySelector(":target")?.id), "chunk-0", "highlighted");
    assert.equal(await page.getByTestId("document-heading").textContent(), "Lantern handbook");
    assert.equal(await page.locator("main img").count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  test("without JavaScript the upload form and the query box work, and a refused file says why", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
    const p = await noJs.newPage();
    await p.goto(collectionUrl);
    await p.getByTestId("upload-file").setInputFiles(file("bridges.txt", "Trolls collect tolls on every stone bridge."));
    await Promise.all([p.waitForURL(/\?uploaded=[0-9a-f-]{36}$/), p.getByTestId("upload-submit").click()]);
    assert.equal(await p.getByTestId("upload-done").textContent(), "Added the document.");
    assert.equal(await p.getByTestId("document-link").filter({ hasText: "bridges.txt" }).count(), 1);

    await p.getByTestId("upload-file").setInputFiles(file("map.png", "not an image"));
    await Promise.all([p.waitForURL(/upload_error=/), p.getByTestId("upload-submit").click()]);
    assert.match(await p.getByTestId("upload-error").textContent(), /only \.txt, \.md, \.html and \.pdf files can be added/);
    assert.equal(await p.getByTestId("document").count(), 2, "nothing was added");

    await p.getByTestId("search-query").fill("trolls");
    await Promise.all([p.waitForURL(/\?q=trolls/), p.getByTestId("search-submit").click()]);
    assert.equal(await p.getByTestId("hit").first().getByTestId("hit-title").textContent(), "bridges.txt");
    await noJs.close();
  });

  test("a collection is deleted once the box is ticked", async () => {
    await page.goto(`${BASE_URL}/search`);
    await hydrated(page);
    const item = page.getByTestId("collection").filter({ hasText: NAME });
    await item.getByTestId("confirm-delete-collection").check();
    await item.getByTestId("delete-collection").click();
    await page.getByTestId("collection-link").filter({ hasText: NAME }).waitFor({ state: "detached", timeout: 10_000 });
    const resp = await page.goto(collectionUrl);
    assert.equal(resp.status(), 404);
  });

  test("no errors surfaced in the page", () => {
    // Two pages answer with an error status on purpose: the empty query (400, with its message) and
    // the deleted collection (404). The browser logs each as a failed load; anything else fails.
    assert.deepEqual(failed, [`400 ${collectionUrl}?q=`, `404 ${collectionUrl}`]);
    assert.deepEqual(
      errors.filter((e) => !/^console: Failed to load resource: the server responded with a status of 40[04]/.test(e)),
      [],
    );
  });
});
