/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * End to end in Debian's Chromium (puppeteer-core, never downloaded) against the real app and an
 * in-process runner: the owner shares a terminal from its pane, someone without an account opens
 * the link and watches it, what they type never reaches the shell, and stopping the share cuts them.
 *
 * @module
 */
import { ok as assert } from "node:assert/strict";
import { existsSync } from "node:fs";
import type { Browser, Page } from "puppeteer-core";
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { waitFor } from "@coda/relay/testing";
import { startInProcessRunner, TestClient } from "@coda/runner/testing";
import { builtSpa, launchChromium, requireChromium, skipE2e } from "./testing.ts";
import type { TerminalTestHook } from "./src/terminal/terminal_pane.tsx";

const TIMEOUT_MS = 30_000;

/** The text of the terminal whose pane is `tabId`, and its status, from its test hook. */
function terminal(page: Page, tabId: string): Promise<{ text: string; status: string } | null> {
  return page.evaluate((id) => {
    const hook: TerminalTestHook | undefined = globalThis.__codaTerminals?.[id];
    return hook ? { text: hook.text(), status: hook.status } : null;
  }, tabId);
}

Deno.test({
  name:
    "e2e: a terminal shared by link is watched read-only by someone without an account, until the owner stops",
  ignore: skipE2e,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    requireChromium();
    const app = await startTestApp({ spaDistDir: await builtSpa() });
    const home = await Deno.makeTempDir({ prefix: "coda-e2e-share-home-" });
    const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie, { name: "laptop" });
    const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
    const browser: Browser = await launchChromium(profile);
    try {
      await waitFor(() => runner.link.connections === 1, "the runner to connect");
      const created = await createSession(app.url, user.cookie, {
        ideaId: "scratch",
        runnerId: paired.runnerId,
      });
      const { sessionId } = created;
      const shell = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
      await shell.opened;
      shell.send({ type: "stdin", sessionId, data: "echo shared-$((6 * 7))\r" });
      await shell.waitForOutput("shared-42");

      // The owner, signed in, shares the session from its tab.
      const owner = await browser.newPage();
      owner.setDefaultTimeout(TIMEOUT_MS);
      await owner.setViewport({ width: 1280, height: 800 });
      const [name, value] = user.cookie.split("=");
      await owner.setCookie({ name, value, url: app.url });
      await owner.goto(`${app.url}/devmode/terminal?session=${sessionId}`);
      const share = await owner.waitForSelector("xpath/.//button[contains(., 'Share…') and not(@disabled)]");
      await share!.click();
      await (await owner.waitForSelector("xpath/.//button[contains(., 'Create link')]"))!.click();
      const linkInput = await owner.waitForSelector('input[aria-label="Share link"]');
      const link = await linkInput!.evaluate((el) => (el as HTMLInputElement).value);
      assert(link.startsWith(`${app.config.publicUrl}/devmode/watch/`) && link.includes("#"), link);

      // Someone else, in a browser that never signed in.
      const context = await browser.createBrowserContext();
      const viewer = await context.newPage();
      viewer.setDefaultTimeout(TIMEOUT_MS);
      await viewer.setViewport({ width: 1000, height: 700 });
      await viewer.goto(link.replace(app.config.publicUrl, app.url));
      await waitFor(
        async () => {
          const shown = await terminal(viewer, "watch");
          return shown?.status === "online" && shown.text.includes("shared-42");
        },
        "the viewer to see the shell",
        TIMEOUT_MS,
      );
      await viewer.waitForFunction(() => document.body.innerText.includes("You are watching this terminal"));
      assert(!(await viewer.$("xpath/.//button[contains(., 'Record')]")), "no controls that act");

      await viewer.focus("textarea.xterm-helper-textarea");
      await viewer.keyboard.type("touch pwned\n");
      shell.send({ type: "stdin", sessionId, data: "touch owned; echo after-$((6 * 7))\r" });
      await waitFor(
        async () => (await terminal(viewer, "watch"))?.text.includes("after-42"),
        "live output",
        TIMEOUT_MS,
      );
      assert(existsSync(`${home}/owned`) && !existsSync(`${home}/pwned`), "only the owner's keystrokes ran");

      // The owner sees the viewer, then stops sharing; the viewer is told.
      await owner.waitForFunction(
        () => document.body.innerText.includes("watching: someone with the link"),
        { timeout: TIMEOUT_MS },
      );
      await (await owner.waitForSelector("xpath/.//button[contains(., 'Stop sharing')]"))!.click();
      await viewer.waitForFunction(
        () => document.body.innerText.includes("The owner stopped sharing this terminal"),
        { timeout: 10_000 },
      );
      await shell.close();
    } finally {
      await browser.close();
      await runner.stop();
      await app.close();
      await Deno.remove(home, { recursive: true });
      await Deno.remove(profile, { recursive: true });
    }
  },
});
