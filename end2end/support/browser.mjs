// Launches Debian's chromium through playwright-core, with the flags this environment needs: no
// sandbox as root, no outside network lookups (only localhost resolves), no background traffic.
// Playwright gives every launch a fresh temporary profile (user-data-dir).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const BASE_URL = process.env.GOBLIN_BASE_URL ?? "http://localhost:3000";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ],
  });
}

/// The admin's saved session (cookies), which first-run.test.mjs writes after signing in.
export function adminState() {
  const state = process.env.GOBLIN_E2E_STATE;
  assert.ok(state && existsSync(state), "run after first-run.test.mjs, which saves the admin session");
  return state;
}

/// A browser signed in as the admin: the browser, a context holding the admin's session, a page in
/// it and the errors that page reports (see `watchErrors`).
export async function asAdmin() {
  const state = adminState();
  const browser = await launch();
  const context = await browser.newContext({ storageState: state });
  const page = await context.newPage();
  return { browser, context, page, errors: watchErrors(page) };
}

/// Collects uncaught page errors and console errors, which is how a failed hydration shows itself.
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/// Gives `page` a virtual passkey authenticator (CTAP2, built in, resident keys, user verification
/// that always succeeds), as a person's phone or laptop would. Returns `credentials()`, listing what
/// it holds, and `remove()`, taking it away (as when a person switches devices).
export async function addPasskeyAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials,
    remove: () => cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId }),
  };
}

/// Resolves `promise`, or fails after `ms` with `what` in the message (WebAuthn prompts can hang).
export function within(ms, what, promise) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}
