// Creates the first admin through a setup link with a virtual passkey, and prints the resulting
// session cookie (`name=value`), for load tests of pages that need a signed-in person.
// Usage: node support/session-cookie.mjs <setup link>
import { addPasskeyAuthenticator, launch, within } from "./browser.mjs";

const link = process.argv[2];
if (!link) {
  console.error("usage: node support/session-cookie.mjs <setup link>");
  process.exit(2);
}
const browser = await launch();
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await addPasskeyAuthenticator(page);
  await page.goto(link);
  await page.locator('[data-hydrated="true"]').waitFor({ timeout: 20_000 });
  await page.getByLabel("Username").fill("bench");
  await page.getByLabel("Display name").fill("Bench");
  const home = new URL("/", link).toString();
  await within(20_000, "registration", Promise.all([page.waitForURL(home), page.getByTestId("setup-submit").click()]));
  const cookie = (await context.cookies()).find((c) => c.name === "goblin_session");
  if (!cookie) throw new Error("no session cookie after sign-in");
  console.log(`${cookie.name}=${cookie.value}`);
} finally {
  await browser.close();
}
