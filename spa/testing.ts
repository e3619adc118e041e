/// <reference lib="deno.ns" />
/**
 * Test helpers for the SPA's end-to-end tests.
 *
 * @module
 */
import puppeteer, { type Browser } from "puppeteer-core";
import { buildSpa } from "./build.ts";

/** Debian's Chromium, which the end-to-end tests drive (never a browser a tool downloads). */
export const CHROMIUM = "/usr/bin/chromium";

const chromiumPresent = await Deno.stat(CHROMIUM).then(() => true, () => false);

/** Opt-out for machines without Chromium; it only skips when Chromium is really absent, so CI always runs the suite. */
export const skipE2e: boolean = Deno.env.get("CODA_SKIP_E2E") === "1" && !chromiumPresent;

/** A missing browser fails the suite instead of passing it as skipped. */
export function requireChromium(): void {
  if (!chromiumPresent) {
    throw new Error(
      `${CHROMIUM} not found: install Chromium, or set CODA_SKIP_E2E=1 to skip the end-to-end suite on this machine`,
    );
  }
}

/** Headless Chromium on the profile directory `profile`, with `extraArgs` after the flags every test uses. */
export function launchChromium(profile: string, extraArgs: string[] = []): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      ...extraArgs,
    ],
  });
}

let built: Promise<string> | undefined;

/**
 * The SPA built from the current sources into a directory of this test file's own, once per file
 * (removed when the process ends): the e2e files run in parallel, and one rebuilding the shared
 * `spa/dist` under another's page made that page's assets 404 mid-load.
 */
export function builtSpa(): Promise<string> {
  built ??= (async () => {
    const outDir = await Deno.makeTempDir({ prefix: "coda-e2e-spa-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(outDir, { recursive: true }));
    await buildSpa({ outDir });
    return outDir;
  })();
  return built;
}
