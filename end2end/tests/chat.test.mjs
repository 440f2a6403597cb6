// Chat: a message with markdown and hostile HTML is sent; the answer streams in over an EventSource,
// renders **bold** as <strong> and shows the HTML as text (no <img>, no script run); tokens and cost
// show; a reload keeps the conversation in the list; Stop ends a running answer with its text kept;
// Play reads an answer aloud; and the same send works with JavaScript off through the plain form.
// Runs after first-run.test.mjs, whose admin session it reuses, and uses the `openai` provider the
// environment seeded on the mock upstream. It adds two providers of its own on the mock (one slow to
// answer, one whose answers stall after the first word) and deletes them at the end.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, adminState, asAdmin } from "../support/browser.mjs";

const MOCK_URL = process.env.GOBLIN_MOCK_URL;
const MOCK_KEY = process.env.GOBLIN_MOCK_KEY;
const MESSAGE = 'Hello **bold** <img src=x onerror="window.__xss=1">';
const CONVERSATION_URL = /\/chat\/[0-9a-f-]{36}$/;

let browser;
let context;
let page;
let errors;
const added = [];

/// Calls a server function as the signed-in admin (a same-origin form post).
async function callFn(path, form) {
  const resp = await context.request.post(`${BASE_URL}${path}`, {
    form,
    headers: { origin: new URL(BASE_URL).origin, accept: "application/json" },
  });
  const body = await resp.text();
  assert.equal(resp.status(), 200, `${path}: ${body}`);
  return body ? JSON.parse(body) : null;
}

/// A provider on the mock whose requests all get `behavior` (see the mock's docs), with one chat model.
async function addMockProvider(name, behavior) {
  const id = await callFn("/fn/admin/provider-create", {
    name,
    kind: "openai",
    base_url: `${MOCK_URL}/_b/${behavior}/openai/v1`,
    priority: "900",
    key: MOCK_KEY,
  });
  added.push(id);
  await callFn("/fn/admin/model-save", {
    provider_id: id,
    model_id: "gpt-4o-mini",
    display_name: `${name} mini`,
    cap_chat: "on",
    context_window: "",
    price_in: "1.5",
    price_out: "2",
    default_params: "",
  });
}

before(async () => {
  assert.ok(MOCK_URL && MOCK_KEY, "GOBLIN_MOCK_URL and GOBLIN_MOCK_KEY must name the running mock upstream");
  ({ browser, context, page, errors } = await asAdmin());
  await addMockProvider("e2e-slow", "latency=1500");
  await addMockProvider("e2e-stall", "stall");
});
after(async () => {
  for (const id of added) {
    await callFn("/fn/admin/provider-delete", { id, confirm: "yes" }).catch(() => {});
  }
  await browser?.close();
});

async function send(p, model, message) {
  await p.getByTestId("model").selectOption(model);
  await p.getByTestId("message").fill(message);
  await p.getByTestId("send").click();
}

/// What every rendering of the hostile message's answer must satisfy.
async function checkAnswer(p, turn) {
  const answer = turn.getByTestId("answer");
  assert.equal(await answer.locator("strong").first().textContent(), "bold");
  assert.match(await answer.textContent(), /Mock reply to: Hello bold <img src=x onerror="window.__xss=1">/);
  assert.equal(await p.locator("main img").count(), 0, "no <img> from the message or the answer");
  assert.match(await turn.getByTestId("turn-tokens").textContent(), /^[1-9]\d* tokens in · [1-9]\d* out$/);
  assert.match(await turn.getByTestId("turn-cost").textContent(), /^\$\d+(\.\d+)?$/);
}

describe("chat", () => {
  test("an answer streams in live, renders markdown safely, and shows tokens and cost", async () => {
    await page.goto(`${BASE_URL}/chat`);
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    const followed = page.waitForRequest((r) => /\/api\/chat\/streams\/[0-9a-f-]{36}\/events/.test(r.url()));
    await send(page, "e2e-slow/gpt-4o-mini", MESSAGE);
    await page.waitForURL(CONVERSATION_URL);
    const turn = page.locator('[data-testid="turn"]').last();
    // The provider takes 1.5 s to start: the turn is shown answering, with a Stop button, and followed.
    await page.locator('[data-testid="turn"][data-status="streaming"]').waitFor({ timeout: 10_000 });
    assert.equal(await turn.getByTestId("turn-status").textContent(), "answering…");
    assert.equal(await turn.getByTestId("stop").count(), 1);
    await followed;
    await page.locator('[data-testid="turn"][data-status="done"]').waitFor({ timeout: 15_000 });
    assert.equal(await turn.getByTestId("stop").count(), 0);
    assert.match(await turn.getByTestId("prompt").textContent(), /^Hello \*\*bold\*\* <img src=x/);
    await checkAnswer(page, turn);
    assert.match(await turn.getByTestId("turn-usage").textContent(), /e2e-slow \/ gpt-4o-mini/);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  test("a reload shows the conversation in the history", async () => {
    const url = page.url();
    await page.reload();
    await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    const link = page.locator('[data-testid="conversation-link"][aria-current="page"]');
    assert.equal(new URL(await link.getAttribute("href"), BASE_URL).href, url);
    assert.match(await link.textContent(), /^Hello \*\*bold\*\* <img src=x/);
    const turn = page.locator('[data-testid="turn"]').last();
    assert.equal(await turn.getAttribute("data-status"), "done");
    await checkAnswer(page, turn);
    assert.equal(await page.getByTestId("model").inputValue(), "e2e-slow/gpt-4o-mini", "the conversation's model");
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  test("Play asks the server for speech", async () => {
    const turn = page.locator('[data-testid="turn"]').last();
    const play = turn.getByTestId("play");
    await play.waitFor({ timeout: 10_000 });
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/v1/audio/speech") && r.request().method() === "POST"),
      play.click(),
    ]);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()["content-type"], /^audio\//);
  });

  test("Stop ends a running answer and keeps its text", async () => {
    await send(page, "e2e-stall/gpt-4o-mini", "tell me a long story");
    const turn = page.locator('[data-testid="turn"]').last();
    await page.locator('[data-testid="turn"]').nth(1).waitFor({ timeout: 10_000 });
    await turn.getByTestId("answer").filter({ hasText: "Mock" }).waitFor({ timeout: 10_000 });
    assert.equal(await turn.getAttribute("data-status"), "streaming");
    await turn.getByTestId("stop").click();
    await page.locator('[data-testid="turn"][data-status="cancelled"]').waitFor({ timeout: 10_000 });
    assert.equal(await turn.getByTestId("turn-status").textContent(), "stopped");
    assert.equal((await turn.getByTestId("answer").textContent()).trim(), "Mock");
    await page.reload();
    assert.equal(await page.locator('[data-testid="turn"]').last().getAttribute("data-status"), "cancelled");
  });

  test("without JavaScript the form sends, and the page shows the finished answer", async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: adminState() });
    const p = await noJs.newPage();
    await p.goto(`${BASE_URL}/chat`);
    await send(p, "openai/gpt-4o-mini", MESSAGE);
    await p.waitForURL(CONVERSATION_URL);
    const turn = p.locator('[data-testid="turn"]').last();
    assert.equal(await turn.getAttribute("data-status"), "done");
    await checkAnswer(p, turn);
    assert.equal(await p.locator('[data-testid="conversation-link"][aria-current="page"]').count(), 1);

    // A refused message comes back to the page with its reason; nothing was added.
    await p.getByTestId("message").fill("   ");
    await Promise.all([p.waitForURL(/\/chat\/[0-9a-f-]{36}\?/), p.getByTestId("send").click()]);
    assert.match(await p.getByTestId("send-error").textContent(), /message: write something first/);
    assert.equal(await p.locator('[data-testid="turn"]').count(), 1);
    await noJs.close();
  });

  test("no errors surfaced in the page", () => {
    assert.deepEqual(errors, []);
  });
});
