/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * End to end in Debian's Chromium (puppeteer-core, never downloaded) against
 * the real app and an in-process runner: Cancel on the approve page denies the
 * pairing; "Recent sessions" lists only sessions that can be reattached, by
 * runner, folder and age; a tab whose runner restarted says its shell ended.
 *
 * @module
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { Browser, Page } from "puppeteer-core";
import {
  checkPairing,
  createSession,
  pairRunner,
  signup,
  startPairing,
  startTestApp,
  type TestUser,
} from "@coda/api/testing";
import { waitFor } from "@coda/relay/testing";
import { startInProcessRunner, TestClient } from "@coda/runner/testing";
import { builtSpa, launchChromium, requireChromium, skipE2e } from "./testing.ts";
import type { ConnectionStatus } from "./src/terminal/connection.ts";
import type { TerminalTestHook } from "./src/terminal/terminal_pane.tsx";

const TIMEOUT_MS = 30_000;

/** A signed-in page of `user` in a fresh headless Chromium; disposing closes the browser. */
async function signedInPage(appUrl: string, user: TestUser): Promise<{ page: Page } & AsyncDisposable> {
  requireChromium();
  const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
  const browser: Browser = await launchChromium(profile);
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await page.setViewport({ width: 1280, height: 800 });
  const [name, value] = user.cookie.split("=");
  await page.setCookie({ name, value, url: appUrl });
  return {
    page,
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

/** The visible text of the page. */
function pageText(page: Page): Promise<string> {
  return page.evaluate(() => document.body.innerText);
}

/** The active terminal tab's buffer and status, from its test hook (`TerminalTestHook`). */
function activeTerminal(page: Page): Promise<{ text: string; status: ConnectionStatus } | null> {
  return page.evaluate(() => {
    const tab = document.querySelector<HTMLElement>('[role="tab"][aria-selected="true"]');
    const hook: TerminalTestHook | undefined = globalThis.__codaTerminals
      ?.[tab?.id.replace(/^tab-/, "") ?? ""];
    return hook ? { text: hook.text(), status: hook.status } : null;
  });
}

Deno.test({
  name: "e2e: Cancel on the approve page denies the pairing; the runner's next poll says so",
  ignore: skipE2e,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const app = await startTestApp({ spaDistDir: await builtSpa() });
    try {
      const user = await signup(app.url);
      const started = await startPairing(app.url, { name: "phished-box", hostname: "phished-box" });
      await using browser = await signedInPage(app.url, user);
      const { page } = browser;
      await page.goto(`${app.url}/devmode/pair?code=${started.code}`);
      await page.waitForSelector("#pair-code");
      await page.click("form button[type=submit]");
      await (await page.waitForSelector("xpath/.//button[contains(., 'Cancel')]"))!.click();
      const notice = await page.waitForSelector("[data-testid=pair-denied]");
      assert((await notice!.evaluate((el) => el.textContent ?? "")).includes("Denied"));
      assertEquals(await checkPairing(app.url, started.code, started.pollSecret), {
        status: 200,
        body: { status: "denied" },
      });
    } finally {
      await app.close();
    }
  },
});

Deno.test({
  name:
    "e2e: Recent sessions lists live sessions by runner, folder and age; a runner restart ends the tab's shell",
  ignore: skipE2e,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const app = await startTestApp({ spaDistDir: await builtSpa() });
    const home = await Deno.makeTempDir({ prefix: "coda-e2e-sessions-home-" });
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie, { name: "laptop" });
    const runners = [startInProcessRunner(app.relayUrl, paired.runnerToken, home)];
    try {
      await waitFor(() => runners[0].link.connections === 1, "the runner to connect");
      /** A session that ran a shell; `exit` ends it. */
      const ran = async (exit: boolean) => {
        const created = await createSession(app.url, user.cookie, {
          ideaId: "scratch",
          runnerId: paired.runnerId,
        });
        const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
        await client.opened;
        client.send({ type: "stdin", sessionId: created.sessionId, data: "echo kept-$((6 * 7))\r" });
        await client.waitForOutput("kept-42");
        if (exit) {
          client.send({ type: "stdin", sessionId: created.sessionId, data: "exit\r" });
          await client.closed;
        } else {
          await client.close();
        }
        return created.sessionId;
      };
      const live = await ran(false);
      await ran(true);
      // Created, never attached: no shell to go back to.
      await createSession(app.url, user.cookie, { ideaId: "scratch", runnerId: paired.runnerId });

      await using browser = await signedInPage(app.url, user);
      const { page } = browser;
      await page.goto(`${app.url}/devmode/terminal`);
      await page.waitForSelector("[data-testid=recent-session]");
      const items = await page.$$eval(
        "[data-testid=recent-session]",
        (els) => els.map((el) => el.textContent),
      );
      assertEquals(items.length, 1, items.join("\n"));
      assert(
        items[0]!.includes("laptop") && items[0]!.includes(home) && items[0]!.includes("just now"),
        items[0]!,
      );

      await (await page.waitForSelector("xpath/.//button[contains(., 'Reattach')]"))!.click();
      await waitFor(
        async () => {
          const terminal = await activeTerminal(page);
          return terminal?.status === "online" && terminal.text.includes("kept-42");
        },
        "the old shell's screen",
        TIMEOUT_MS,
      );
      assert(runners[0].manager.get(live), "reattached to the running shell");

      await runners[0].stop();
      runners.push(startInProcessRunner(app.relayUrl, paired.runnerToken, home));
      await waitFor(
        async () => (await pageText(page)).includes("This shell ended when the runner restarted"),
        "the tab to say its shell ended",
        TIMEOUT_MS,
      );
      assertEquals(runners[1].manager.list(), [], "no new shell under the old id");
      const after = await activeTerminal(page);
      assertEquals(after?.status, "ended");
      assert(after.text.includes("kept-42"), "the old screen stays, not a fresh prompt");

      // The app heard the end: a reload does not reopen the tab's session, and says so in words.
      await page.reload();
      await waitFor(
        async () => (await pageText(page)).includes("This session has ended. Open a new terminal."),
        "the reloaded tab to say its session ended",
        TIMEOUT_MS,
      );
      assertEquals(runners[1].manager.list(), []);
    } finally {
      for (const runner of runners) await runner.stop();
      await app.close();
      await Deno.remove(home, { recursive: true });
    }
  },
});
