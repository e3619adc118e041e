/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * File transfer end to end in Debian's Chromium (puppeteer-core, never downloaded) against the
 * real app and an in-process runner: a file picked with the Upload button lands in the shell's
 * directory (its `sha256sum` there matches), one dropped on the terminal too, and a file offered
 * by `coda-download` in the terminal is saved by the browser after a click on Save.
 *
 * @module
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { waitFor } from "@coda/relay/testing";
import { startInProcessRunner } from "@coda/runner/testing";
import { builtSpa, launchChromium, requireChromium, skipE2e } from "./testing.ts";
import type { TerminalTestHook } from "./src/terminal/terminal_pane.tsx";

const TIMEOUT_MS = 30_000;

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

function random(bytes: number): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  }
  return data;
}

/** The text of the first terminal on the page, from its test hook. */
function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => {
    const hooks: Record<string, TerminalTestHook> = globalThis.__codaTerminals ?? {};
    return Object.values(hooks)[0]?.text() ?? "";
  });
}

async function typeInTerminal(page: Page, text: string): Promise<void> {
  await page.focus("textarea.xterm-helper-textarea");
  await page.keyboard.type(text);
}

Deno.test({
  name:
    "e2e: upload by the file input and by a drop, sha256sum in the shell matches; coda-download saves the file",
  ignore: skipE2e,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    requireChromium();
    const app = await startTestApp({ spaDistDir: await builtSpa() });
    const home = await Deno.makeTempDir({ prefix: "coda-e2e-transfer-home-" });
    const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
    const local = await Deno.makeTempDir({ prefix: "coda-e2e-transfer-local-" });
    const downloads = await Deno.makeTempDir({ prefix: "coda-e2e-downloads-" });
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie, { name: "laptop" });
    const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
    const browser: Browser = await launchChromium(profile);
    try {
      await waitFor(() => runner.link.connections === 1, "the runner to connect");
      const { sessionId } = await createSession(app.url, user.cookie, {
        ideaId: "scratch",
        runnerId: paired.runnerId,
      });
      await Deno.mkdir(join(home, "work"));
      const page = await browser.newPage();
      page.setDefaultTimeout(TIMEOUT_MS);
      await page.setViewport({ width: 1280, height: 800 });
      const [name, value] = user.cookie.split("=");
      await page.setCookie({ name, value, url: app.url });
      await page.goto(`${app.url}/devmode/terminal?session=${sessionId}`);
      await page.waitForSelector("xpath/.//button[contains(., 'Upload…') and not(@disabled)]");
      await typeInTerminal(page, "cd work && echo in-$((6 * 7))\n");
      await waitFor(
        async () => (await terminalText(page)).includes("in-42"),
        "the shell in work",
        TIMEOUT_MS,
      );
      await page.waitForFunction(() => document.querySelector(".cwd")?.textContent?.endsWith("/work"));

      // Upload by the file input, then sha256sum in the shell.
      const data = random(3 * 1024 * 1024 + 321);
      await Deno.writeFile(join(local, "random.bin"), data);
      const input = await page.waitForSelector('input[aria-label="Upload files"]');
      await input!.uploadFile(join(local, "random.bin"));
      await page.waitForFunction(
        (path) => document.body.innerText.includes(`Uploaded to ${path}`),
        {},
        join(home, "work", "random.bin"),
      );
      await typeInTerminal(page, "sha256sum random.bin\n");
      await waitFor(
        async () => (await terminalText(page)).includes(`${sha256(data)}  random.bin`),
        "sha256sum to print the uploaded file's hash",
        TIMEOUT_MS,
      );

      // A file dropped on the terminal.
      await page.evaluate(() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["dropped on the terminal\n"], "dropped.txt"));
        const target = document.querySelector(".terminal-host")!;
        target.dispatchEvent(
          new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }),
        );
      });
      await page.waitForFunction(() =>
        document.body.innerText.includes("dropped.txt") &&
        document.body.innerText.includes("/work/dropped.txt")
      );
      assertEquals(await Deno.readTextFile(join(home, "work", "dropped.txt")), "dropped on the terminal\n");

      // coda-download offers a file; the browser saves it only after Save.
      const offered = random(2 * 1024 * 1024 + 7);
      await Deno.writeFile(join(home, "work", "offered.bin"), offered);
      const cdp = await page.createCDPSession();
      await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
      await typeInTerminal(page, "coda-download offered.bin\n");
      const save = await page.waitForSelector("xpath/.//button[normalize-space()='Save']");
      assert(
        await page.evaluate(() => document.body.innerText.includes("offered.bin")),
        "the offer names the file",
      );
      assertEquals((await Array.fromAsync(Deno.readDir(downloads))).length, 0, "nothing saved before Save");
      await save!.click();
      const saved = join(downloads, "offered.bin");
      await waitFor(
        async () => (await Deno.stat(saved).catch(() => null))?.size === offered.byteLength,
        "the browser to save the download",
        TIMEOUT_MS,
      );
      assertEquals(sha256(await Deno.readFile(saved)), sha256(offered));
      await page.waitForFunction(() => document.body.innerText.includes("Downloaded"));
    } finally {
      await browser.close();
      await runner.stop();
      await app.close();
      for (const dir of [home, profile, local, downloads]) await Deno.remove(dir, { recursive: true });
    }
  },
});
