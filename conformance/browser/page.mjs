// Drives the simulator's page at URL in Debian's chromium, headless, with a fresh
// profile: the live table shows a value an EtherNet/IP client wrote, then the page
// edits values, forces and clears an error code, sets the delay and drops the client's
// connection through its inputs and buttons.
// The Rust test (conformance/tests/web.rs) then reads the values back over EtherNet/IP.
//
// usage: node page.mjs URL PROFILE_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [url, profile] = process.argv.slice(2);
if (!url || !profile) {
  console.error("usage: node page.mjs URL PROFILE_DIR");
  process.exit(2);
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);

  // The table is live: SCADA[2] was written by an EtherNet/IP client before the page
  // loaded, and the refresh shows it.
  const cell = (tag, index) => page.locator(`input.value[data-tag="${tag}"][data-index="${index}"]`);
  await page.waitForFunction(() => document.querySelector('#tags tr[data-tag="SCADA"]'));
  await assert.doesNotReject(
    page.waitForFunction(
      () => document.querySelector('input.value[data-tag="SCADA"][data-index="2"]')?.value === "55"
    )
  );

  // Edit in place: type, Enter; the status line says what the API did.
  await cell("SCADA", 7).fill("1234");
  await cell("SCADA", 7).press("Enter");
  await page.waitForFunction(() =>
    document.getElementById("status").textContent.includes("tags.SCADA.attribute[7]")
  );
  await cell("Speed", 0).fill("6.5");
  await cell("Speed", 0).press("Enter");
  await page.waitForFunction(() =>
    document.getElementById("status").textContent.includes("tags.Speed.attribute[0]")
  );

  // A refused value is marked and explained, and changes nothing.
  await cell("SCADA", 8).fill("99999");
  await cell("SCADA", 8).press("Enter");
  await page.waitForFunction(() => document.getElementById("status").className === "failed");
  assert.match(await page.locator("#status").textContent(), /out of range/);

  // Force an error code, see it listed, clear it.
  const error = page.locator('input.error[data-tag="SCADA"]');
  await error.fill("8");
  await error.press("Enter");
  await page.waitForFunction(() =>
    document.getElementById("status").textContent.includes("tags.SCADA.error")
  );
  const forced = await (await fetch(new URL("/api/tags/SCADA/error", url))).json();
  assert.equal(forced.data.tags.SCADA.error, 8);
  await error.fill("0");
  await error.press("Enter");
  await page.waitForFunction(() =>
    document.getElementById("status").textContent.includes('tags.SCADA.error="0"')
  );

  // The delay.
  await page.locator("#delay").fill("0.25");
  await page.locator("#delay-set").click();
  await page.waitForFunction(() =>
    document.getElementById("delay-now").textContent.includes("0.25")
  );

  // Drop the EtherNet/IP client's connection from its row.
  await page.waitForFunction(() => document.querySelectorAll("#connections tbody tr").length === 1);
  await page.locator("#connections button.drop").first().click();
  await page.waitForFunction(() => document.querySelectorAll("#connections tbody tr").length === 0);

  // The refresh keeps the edited values (it does not overwrite them).
  const refreshed = await page.evaluate(() => document.body.dataset.refreshed);
  await page.waitForFunction((before) => document.body.dataset.refreshed !== before, refreshed);
  assert.equal(await cell("SCADA", 7).inputValue(), "1234");
  assert.equal(await cell("SCADA", 8).inputValue(), "99999", "a refused edit stays for correction");
  assert.deepEqual(errors, []);
  console.log("page checks passed");
} finally {
  await context.close();
}
