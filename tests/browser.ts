// A headless Chromium for the browser tests: Debian's `chromium` driven by `npm:puppeteer-core`
// (whose own browser download cannot work on our machines), with a fresh profile in a temp dir
// that is removed afterwards.
//
// Without Chromium the browser suites are skipped, unless A2A_REQUIRE_BROWSER=1 (set by .ci/run),
// which turns a missing browser into a failure.

import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { withDeadline } from "./helpers.ts";

/** The Chromium binary (`A2A_CHROMIUM` overrides it). */
export const CHROMIUM: string = Deno.env.get("A2A_CHROMIUM") || "/usr/bin/chromium";

/** Whether the suites must run (CI) rather than be skipped when Chromium is missing. */
export const REQUIRE_BROWSER: boolean = Deno.env.get("A2A_REQUIRE_BROWSER") === "1";

function found(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

/** Whether Chromium is there. */
export const BROWSER_FOUND: boolean = found();

/** Spread into a `Deno.test` definition: ignored when Chromium is missing and not required. */
export const BROWSER_TEST: { ignore: boolean } = { ignore: !REQUIRE_BROWSER && !BROWSER_FOUND };

/** Flags for a quiet, sandbox-free headless run that reaches nothing but our own servers. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** A launched browser; `await using` closes it (killing it if it will not close) and its profile. */
export interface TestBrowser extends AsyncDisposable {
  /** The browser. */
  readonly browser: Browser;
  /** Opens a page with short default timeouts, and collects its console errors. */
  page(): Promise<Page & { errors: string[] }>;
}

/**
 * Launches Chromium with a fresh profile.
 *
 * @returns The browser.
 * @throws {Error} When Chromium is missing (only reached when it is required).
 */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!BROWSER_FOUND) {
    throw new Error(
      `Chromium is required (A2A_REQUIRE_BROWSER=1) but was not found at ${CHROMIUM}: ` +
        "apt-get install chromium",
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "a2a-chromium-" });
  const removeProfile = () => Deno.remove(profile, { recursive: true }).catch(() => {});
  let browser: Browser;
  try {
    browser = await withDeadline(
      puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: profile,
        args: FLAGS,
        timeout: 30_000,
        // Puppeteer's own signal handlers would outlive the test in Deno.
        handleSIGINT: false,
        handleSIGTERM: false,
        handleSIGHUP: false,
      }),
      40_000,
      "launching Chromium",
    );
  } catch (err) {
    await removeProfile();
    throw err;
  }
  return {
    browser,
    async page() {
      const page = Object.assign(await browser.newPage(), { errors: [] as string[] });
      page.setDefaultTimeout(15_000);
      page.on("console", (m) => {
        if (m.type() === "error") page.errors.push(m.text());
      });
      page.on("pageerror", (err) => page.errors.push(String(err)));
      return page;
    },
    async [Symbol.asyncDispose]() {
      try {
        await withDeadline(browser.close(), 10_000, "closing Chromium");
      } catch {
        browser.process()?.kill("SIGKILL");
      } finally {
        await removeProfile();
      }
    },
  };
}
