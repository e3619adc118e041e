/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * End to end in a real browser: Debian's Chromium (headless, driven by
 * puppeteer-core, never downloaded) against the real app (API, relay, SPA on
 * one port) and a real runner process with a real shell.
 *
 * The new-user flow is walked at 1280×800 and, shorter, at 390×844 (a phone);
 * each step saves a screenshot into `test-output/e2e/` (git-ignored), named
 * by its number, the viewport and the step.
 *
 * @module
 */
import { equal as assertEqual, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import { apiJson, approvePairing, signup, type StartedApp, startTestApp } from "@coda/api/testing";
import { waitFor } from "@coda/relay/testing";
import { endHolders, silentLogger } from "@coda/runner/testing";
import { builtSpa, launchChromium, requireChromium, skipE2e } from "./testing.ts";
import type { TerminalTestHook } from "./src/terminal/terminal_pane.tsx";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const SCREENSHOTS = join(ROOT, "test-output", "e2e");
const STEP_TIMEOUT_MS = 45_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true };
/** How often a wait polls the page (each poll is a round trip to Chromium). */
const POLL_MS = 100;

// Screenshots are numbered per run: those of an earlier run would mix with this one's.
if (!skipE2e) await Deno.remove(SCREENSHOTS, { recursive: true }).catch(() => {});

/** A runner process started from source, with its output collected. */
class RunnerProcess {
  #child: Deno.ChildProcess;
  #output = "";
  #reading: Promise<void>;
  readonly #home: string;

  constructor(appUrl: string, home: string, args: string[] = []) {
    this.#home = home;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "runner", "main.ts"), ...args],
      cwd: home,
      env: {
        APP_URL: appUrl,
        CODA_RUNNER_CONFIG: join(home, "runner-config.json"),
        // No one at its standard input to confirm the account: kept as an unattended install would.
        CODA_RUNNER_ASSUME_YES: "1",
        SHELL: "/bin/bash",
        HOME: home,
        TERM: "xterm-256color",
        NO_COLOR: "1",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.#output += decoder.decode(chunk, { stream: true });
    };
    this.#reading = Promise.all([collect(this.#child.stdout), collect(this.#child.stderr)]).then(() => {});
  }

  get output(): string {
    return this.#output;
  }

  /** The pairing code from the link it printed (`…/devmode/pair?code=XXXX-XXXX`). */
  async pairingCode(): Promise<string> {
    const match = await waitFor(
      () => /\/devmode\/pair\?code=([A-Za-z0-9%-]+)/.exec(this.#output),
      "pairing code",
      STEP_TIMEOUT_MS,
      POLL_MS,
    );
    return decodeURIComponent(match[1]);
  }

  /** The URL `coda-runner serve` printed for the manual connection. */
  async serveUrl(): Promise<string> {
    const match = await waitFor(
      () => /ws:\/\/\S+\/client\?token=\S+/.exec(this.#output),
      "serve URL",
      STEP_TIMEOUT_MS,
      POLL_MS,
    );
    return match[0];
  }

  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited (e.g. after being revoked).
    }
    await this.#child.status;
    await this.#reading;
    // The sessions' holders outlive a stopped runner by design; a test leaves none behind.
    await endHolders(join(this.#home, "sessions"), silentLogger);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

let shot = 0;
/** Saves `NN-<width>x<height>-<name>.png`. */
async function screenshot(page: Page, name: string): Promise<void> {
  shot++;
  const viewport = page.viewport();
  const size = viewport ? `${viewport.width}x${viewport.height}` : "default";
  const path = join(SCREENSHOTS, `${String(shot).padStart(2, "0")}-${size}-${name}.png`) as `${string}.png`;
  await page.screenshot({ path });
}

/** The test hook of the active terminal tab. */
function activeHook(page: Page): Promise<TerminalTestHook | null> {
  return page.evaluate(() => {
    const tab = document.querySelector<HTMLElement>('[role="tab"][aria-selected="true"]');
    const id = tab?.id.replace(/^tab-/, "");
    const hook = id ? globalThis.__codaTerminals?.[id] : undefined;
    if (!hook) return null;
    return {
      tabId: hook.tabId,
      sessionId: hook.sessionId,
      offset: hook.offset,
      status: hook.status,
      renderer: hook.renderer,
      cols: hook.cols,
      rows: hook.rows,
      fontSize: hook.fontSize,
      fontFamily: hook.fontFamily,
      cursorStyle: hook.cursorStyle,
      scrollback: hook.scrollback,
      background: hook.background,
      text: hook.text(),
    } as unknown as TerminalTestHook;
  });
}

/** Waits until the active terminal matches `check`; returns its snapshot (with `text` as a string). */
async function waitForTerminal(
  page: Page,
  what: string,
  check: (hook: TerminalTestHook & { text: string }) => boolean,
  timeoutMs = STEP_TIMEOUT_MS,
): Promise<TerminalTestHook & { text: string }> {
  let last: (TerminalTestHook & { text: string }) | null = null;
  try {
    return await waitFor(
      async () => {
        last = await activeHook(page) as (TerminalTestHook & { text: string }) | null;
        return last && check(last) ? last : null;
      },
      what,
      timeoutMs,
      POLL_MS,
    );
  } catch (error) {
    const snapshot = last as (TerminalTestHook & { text: string }) | null;
    throw new Error(
      `${(error as Error).message}; last state: ${snapshot?.status} offset ${snapshot?.offset}\n${
        snapshot?.text.trimEnd().split("\n").slice(-15).join("\n")
      }`,
    );
  }
}

/** Types into the active terminal (its hidden textarea has the focus). */
async function typeInTerminal(page: Page, text: string): Promise<void> {
  const hook = await activeHook(page);
  assert(hook, "a terminal tab is active");
  await page.focus(`#pane-${hook.tabId} textarea.xterm-helper-textarea`);
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/** The query in the page's address bar. */
function search(page: Page): Promise<string> {
  return page.evaluate(() => location.search);
}

/** Clicks the middle of what `selector` finds with the mouse, as a person would (whatever lies on top gets it). */
async function mouseClick(page: Page, selector: string): Promise<void> {
  const element = await page.waitForSelector(selector, { timeout: STEP_TIMEOUT_MS });
  const box = await element!.boundingBox();
  assert(box, `${selector} is displayed`);
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
}

/**
 * Asserts that every control `selector` finds that is displayed lies inside the viewport's width and is
 * what a click at its middle reaches (nothing covers it); returns how many there were.
 */
async function assertOnScreen(page: Page, selector: string): Promise<number> {
  const problems = await page.$$eval(selector, (elements) =>
    elements.flatMap((element) => {
      const box = element.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) return [];
      const name = (element.getAttribute("aria-label") ?? element.textContent ?? "").trim() ||
        element.tagName;
      if (box.left < 0 || box.right > innerWidth || box.top < 0 || box.bottom > innerHeight) {
        return [
          `${name}: ${Math.round(box.left)}–${Math.round(box.right)} px, viewport ${innerWidth} px wide`,
        ];
      }
      const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
      return hit && element.contains(hit) ? ["ok"] : [`${name}: covered by ${hit?.outerHTML.slice(0, 80)}`];
    }));
  const bad = problems.filter((p) => p !== "ok");
  assertEqual(bad.length, 0, `${selector} off screen or covered:\n${bad.join("\n")}`);
  assert(problems.length > 0, `some ${selector} is displayed`);
  return problems.length;
}

/** Opens the header's menu when the layout folds it (narrow screens), with a real mouse click. */
async function openHeaderMenu(page: Page): Promise<void> {
  const toggle = await page.$(".topbar .menu-toggle");
  if (!toggle || !await toggle.boundingBox()) return;
  if (await toggle.evaluate((el) => el.getAttribute("aria-expanded") === "true")) return;
  await assertOnScreen(page, ".topbar .menu-toggle");
  await mouseClick(page, ".topbar .menu-toggle");
  await page.waitForSelector(".topbar .menu-toggle[aria-expanded='true']");
}

/** Every header control, and every button of the active terminal's toolbars, fits and takes a real click. */
async function assertControlsOnScreen(page: Page, pane: string | null): Promise<void> {
  await openHeaderMenu(page);
  await assertOnScreen(page, ".topbar a, .topbar button");
  // A real click on the theme toggle inside the (possibly folded) header switches the theme and back.
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  const before = await theme();
  await mouseClick(page, ".topbar button[aria-label^='Switch to the']");
  await page.waitForFunction((was) => document.documentElement.dataset.theme !== was, {}, before);
  await mouseClick(page, ".topbar button[aria-label^='Switch to the']");
  await page.waitForFunction((was) => document.documentElement.dataset.theme === was, {}, before);
  if (await page.$(".topbar .menu-toggle[aria-expanded='true']")) {
    await mouseClick(page, ".topbar .menu-toggle");
    await page.waitForSelector(".topbar .menu-toggle[aria-expanded='false']");
  }
  if (!pane) return;
  await assertOnScreen(page, `${pane} .pane-toolbar button`);
  await mouseClick(page, `${pane} .pane-toolbar button[aria-haspopup='menu']`);
  await page.waitForSelector(`${pane} [role='menu']`);
  await assertOnScreen(page, `${pane} [role='menuitem']`);
  await page.keyboard.press("Escape");
  await page.waitForFunction((sel) => !document.querySelector(sel), {}, `${pane} [role='menu']`);
  if (await page.$(`${pane} .key-bar`)) await assertOnScreen(page, `${pane} .key-bar button`);
}

/** Opens the settings panel of `pane`, sets the font size, and waits until the terminal uses it. */
async function setFontSize(page: Page, pane: string, size: number): Promise<void> {
  await mouseClick(page, `${pane} button[title^="Terminal settings"]`);
  const input = await page.waitForSelector(`${pane} .settings-panel input[type=number]`);
  await input!.click({ count: 3 });
  await input!.type(String(size));
  await waitForTerminal(page, `font size ${size}`, (h) => h.fontSize === size);
}

/** Lines of the terminal that are exactly `line` (ignoring trailing spaces). */
function countLines(text: string, line: string): number {
  return text.split("\n").filter((l) => l.trimEnd() === line).length;
}

Deno.test({
  name: "e2e: sign up, pair a runner, use a terminal, survive reload and relay restart, see revocation",
  ignore: skipE2e,
  async fn(t) {
    requireChromium();
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    const spaDistDir = await builtSpa();
    const dataDir = await Deno.makeTempDir({ prefix: "coda-e2e-data-" });
    const home = await Deno.makeTempDir({ prefix: "coda-e2e-home-" });
    const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
    const port = freePort();
    const env = { PORT: String(port), DEVMODE_DATA_DIR: dataDir };
    let app: StartedApp = await startTestApp({ env, spaDistDir });
    let runner: RunnerProcess | null = null;
    let serve: RunnerProcess | null = null;
    const extraDirs: string[] = [];
    let browser: Browser | null = null;
    const marker = crypto.randomUUID().slice(0, 8);
    let failed = false;
    /** Runs a step unless an earlier one failed (later steps build on the earlier ones). */
    const step = async (name: string, fn: () => Promise<void>) => {
      if (failed) return;
      if (await t.step(name, fn)) return;
      failed = true;
      const pages = await browser?.pages() ?? [];
      const last = pages.at(-1);
      if (last) {
        await last.bringToFront();
        await screenshot(last, "failed").catch(() => {});
      }
    };
    try {
      browser = await launchChromium(profile, [
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
      ]);
      const page = await browser.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      await page.setViewport(DESKTOP);
      // With no choice stored, the app follows the system's colour scheme.
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(String(error)));
      page.on("console", (message) => {
        if (message.type() === "error") pageErrors.push(message.text());
      });

      await step("a new person follows the runner's link, signs up, and lands on the code", async () => {
        runner = new RunnerProcess(app.url, home);
        const code = await runner.pairingCode();
        await page.goto(`${app.url}/devmode/pair?code=${code}`);
        await page.waitForFunction(() => location.pathname === "/signin", { timeout: STEP_TIMEOUT_MS });
        const toSignup = await page.waitForSelector(".switch-auth a[href^='/signup']");
        await toSignup!.click();
        await page.waitForSelector("#auth-email");
        await page.type("#auth-email", `e2e-${marker}@example.com`);
        await page.type("#auth-password", "correct horse battery staple");
        await screenshot(page, "signup-form");
        await page.click("button[type=submit]");
        await page.waitForFunction(() => location.pathname === "/devmode/pair", { timeout: STEP_TIMEOUT_MS });
        // The link only fills the code in: a look-up spends one of the account's attempts, so it waits for a click.
        const lookUps: string[] = [];
        page.on("request", (request) => {
          if (request.url().includes("/api/devmode/pair/info")) lookUps.push(request.url());
        });
        const input = await page.waitForSelector("#pair-code");
        await page.waitForNetworkIdle();
        assertEqual(await input!.evaluate((el) => (el as HTMLInputElement).value), code);
        assertEqual(await page.$(".facts"), null);
        assertEqual(lookUps.length, 0);
        await page.click("form button[type=submit]");
        await page.waitForSelector(".facts");
        assertEqual(lookUps.length, 1);
        const shown = await page.$eval(".facts code", (el) => el.textContent ?? "");
        assertEqual(shown, code);
      });

      await step("check what is being authorized, approve, see the runner online", async () => {
        const facts = await page.$eval(".facts", (el) => el.textContent ?? "");
        assert(facts.includes(Deno.hostname()) || facts.includes("linux"), facts);
        await screenshot(page, "pair-confirm");
        const approve = await page.waitForSelector("xpath/.//button[contains(., 'Approve')]");
        await approve!.click();
        await page.waitForFunction(
          () => document.querySelector(".card.success")?.textContent?.includes("Online"),
          { timeout: STEP_TIMEOUT_MS },
        );
        await screenshot(page, "paired-online");
        await page.goto(`${app.url}/devmode/runners`);
        await page.waitForSelector(".runner .badge-ok");
        assertEqual(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
        await assertControlsOnScreen(page, null);
        await screenshot(page, "runners-online");
        await page.click("button[aria-label='Switch to the light theme']");
        await screenshot(page, "runners-light-theme");
        await page.click("button[aria-label='Switch to the dark theme']");
      });

      await step("open a terminal from the runner's link and see typed output rendered", async () => {
        // The runners page links to `/devmode/terminal?runner=…`.
        await page.click(".runner a[href^='/devmode/terminal?runner=']");
        await page.waitForSelector("#runner-select");
        assert((await search(page)).startsWith("?runner="));
        const open = await page.waitForSelector("xpath/.//button[contains(., 'Open terminal')]");
        await open!.click();
        await waitForTerminal(
          page,
          "terminal online with a prompt",
          (h) => h.status === "online" && /[$#] *$/m.test(h.text),
        );
        await typeInTerminal(page, `echo hello-${marker}`);
        const hook = await waitForTerminal(
          page,
          "echo output",
          (h) => countLines(h.text, `hello-${marker}`) === 1,
        );
        await assertControlsOnScreen(page, `#pane-${hook.tabId}`);
        await screenshot(page, "terminal-hello");
      });

      await step("resize the viewport and see stty size follow", async () => {
        const before = (await activeHook(page))!;
        await page.setViewport({ width: 820, height: 560 });
        const resized = await waitForTerminal(
          page,
          "terminal refit",
          (h) => h.cols < before.cols && h.rows < before.rows,
        );
        await typeInTerminal(page, "stty size");
        await waitForTerminal(
          page,
          "stty size output",
          (h) => countLines(h.text, `${resized.rows} ${resized.cols}`) === 1,
        );
        await screenshot(page, "terminal-resized");
      });

      await step("on a phone-sized screen, the key bar's sticky Ctrl interrupts a command", async () => {
        await page.setViewport({ width: 390, height: 760 });
        const hook = (await activeHook(page))!;
        await typeInTerminal(page, "sleep 300; echo not-interrupted");
        await waitForTerminal(page, "sleep running", (h) => h.text.includes("sleep 300"));
        const pane = `#pane-${hook.tabId}`;
        if (!await page.$(`${pane} .key-bar`)) await page.click(`${pane} button[title^="Show extra keys"]`);
        // A click that lands while the pane re-renders is lost: click until Ctrl shows pressed (a toggle, so
        // never again once it does).
        await waitFor(
          async () => {
            if (await page.$(`${pane} .key-bar button[aria-pressed="true"]`)) return true;
            await page.click(`${pane} .key-bar button[aria-pressed]`);
            return false;
          },
          "the sticky Ctrl to be pressed",
          STEP_TIMEOUT_MS,
          1000,
        );
        await screenshot(page, "phone-key-bar");
        await page.focus(`${pane} textarea.xterm-helper-textarea`);
        await page.keyboard.type("c");
        await waitForTerminal(page, "interrupted by ^C", (h) => /\^C\s*\n.*[$#] *$/m.test(h.text.trimEnd()));
        await screenshot(page, "phone-interrupted");
        await page.setViewport({ width: 820, height: 560 });
      });

      await step("reload the page and reattach with the earlier output", async () => {
        const before = (await activeHook(page))!;
        // The address bar names the tab's session, not the runner form the tab was opened from.
        assertEqual(await search(page), `?session=${before.sessionId}`);
        await page.reload();
        const after = await waitForTerminal(
          page,
          "reattached with earlier output",
          (h) => h.status === "online" && countLines(h.text, `hello-${marker}`) === 1,
        );
        assertEqual(after.sessionId, before.sessionId);
        assertEqual(after.tabId, before.tabId);
        await screenshot(page, "terminal-reloaded");
      });

      await step(
        "rename the tab, search shows “n of 3”, change font size and colours; a reload keeps them",
        async () => {
          await page.setViewport(DESKTOP);
          const hook = (await activeHook(page))!;
          const pane = `#pane-${hook.tabId}`;
          const tabLabel = `#tab-${hook.tabId}`;
          await page.click(tabLabel, { count: 2 });
          const nameInput = `${pane} .pane-panel input[placeholder^="Empty"]`;
          const name = await page.waitForSelector(nameInput);
          await page.waitForFunction((sel) => document.activeElement === document.querySelector(sel), {
            timeout: STEP_TIMEOUT_MS,
          }, nameInput);
          await name!.type(`logs ${marker}`);
          await page.keyboard.press("Enter");
          await page.waitForFunction(
            (sel, text) => document.querySelector(sel)?.textContent?.includes(text),
            { timeout: STEP_TIMEOUT_MS },
            tabLabel,
            `logs ${marker}`,
          );

          // The command line holds "mark <marker>", only its output "mark-<marker>".
          await typeInTerminal(page, `printf '%s-%s\\n' mark ${marker} mark ${marker} mark ${marker}`);
          await waitForTerminal(page, "three marks", (h) => countLines(h.text, `mark-${marker}`) === 3);
          await page.click(`${pane} button[title^="Search"]`);
          const find = await page.waitForSelector(`${pane} [role=search] input`);
          await find!.type(`mark-${marker}`);
          const count = () => page.$eval(`${pane} .search-count`, (el) => el.textContent ?? "");
          const first = await waitFor(
            async () => /^[123] of 3$/.exec(await count())?.[0],
            "n of 3",
            STEP_TIMEOUT_MS,
          );
          await page.keyboard.press("Enter");
          const second = await waitFor(
            async () => {
              const now = await count();
              return /^[123] of 3$/.test(now) && now !== first ? now : null;
            },
            "the next match",
            STEP_TIMEOUT_MS,
          );
          await screenshot(page, "terminal-search-count");
          await page.click(`${pane} button[aria-label="Previous match"]`);
          await waitFor(async () => await count() === first, "the previous match again", STEP_TIMEOUT_MS);
          assert(second !== first);
          await page.keyboard.press("Escape");

          await setFontSize(page, pane, 18);
          await page.select(`${pane} .settings-panel select[id$="-theme"]`, "solarized-dark");
          await waitForTerminal(page, "solarized colours", (h) => h.background === "#002b36");
          await screenshot(page, "terminal-settings");
          await page.reload();
          const after = await waitForTerminal(
            page,
            "reloaded with the settings",
            (h) => h.status === "online" && h.fontSize === 18 && h.background === "#002b36",
          );
          assertEqual(after.tabId, hook.tabId);
          assert((await page.$eval(tabLabel, (el) => el.textContent ?? "")).includes(`logs ${marker}`));
          // Ctrl+= and Ctrl+0 in the terminal resize its font (and not the page).
          await page.focus(`${pane} textarea.xterm-helper-textarea`);
          await page.keyboard.down("Control");
          await page.keyboard.press("Equal");
          await page.keyboard.up("Control");
          await waitForTerminal(page, "Ctrl+= made the font larger", (h) => h.fontSize === 19);
          await page.keyboard.down("Control");
          await page.keyboard.press("Digit0");
          await page.keyboard.up("Control");
          await waitForTerminal(page, "Ctrl+0 reset the font", (h) => h.fontSize === 14);
          await screenshot(page, "terminal-renamed-reloaded");
        },
      );

      await step(
        "terminal queries are answered live once, and not again when the output is replayed",
        async () => {
          // Device attributes, foreground and background colour, a DEC mode, the cursor position: what vim asks.
          // `read` takes the live answers so they do not reach the prompt.
          await typeInTerminal(
            page,
            `printf '\\e[c\\e]10;?\\a\\e]11;?\\a\\e[?2$p\\e[6n'; read -rs -t 2 -d '' a; ` +
              `[[ $a == *rgb:* ]] && echo answered-${marker}`,
          );
          await waitForTerminal(page, "live answers", (h) => countLines(h.text, `answered-${marker}`) === 1);
          await page.reload();
          await waitForTerminal(
            page,
            "reattached with the queries replayed",
            (h) => h.status === "online" && countLines(h.text, `answered-${marker}`) === 1,
          );
          await typeInTerminal(page, `echo clean-${marker}`);
          const after = await waitForTerminal(
            page,
            "the echo ran",
            (h) => countLines(h.text, `clean-${marker}`) === 1 || /not found|syntax error/.test(h.text),
          );
          const lines = after.text.split("\n").map((l) => l.trimEnd());
          const typed = lines[lines.indexOf(`clean-${marker}`) - 1];
          assert(
            new RegExp(`[$#] echo clean-${marker}$`).test(typed ?? ""),
            `the shell got only the echo:\n${lines.filter(Boolean).slice(-6).join("\n")}`,
          );
          await screenshot(page, "terminal-queries-replayed");
        },
      );

      await step("close the tab and reattach from Recent sessions (no runner named)", async () => {
        const before = (await activeHook(page))!;
        // Closed, the session is no longer open in a tab, so Recent sessions offers it.
        await page.click(".tab.selected .tab-close");
        await page.waitForFunction(() => location.search === "", { timeout: STEP_TIMEOUT_MS });
        const reattach = await page.waitForSelector(
          `li[data-testid="recent-session"][data-session-id="${before.sessionId}"] button`,
          { timeout: STEP_TIMEOUT_MS },
        );
        await screenshot(page, "recent-sessions");
        await reattach!.click();
        const after = await waitForTerminal(
          page,
          "reattached from Recent sessions",
          (h) => h.status === "online" && countLines(h.text, `hello-${marker}`) === 1,
        );
        assertEqual(after.sessionId, before.sessionId);
        assertEqual(await search(page), `?session=${before.sessionId}`);
      });

      await step("restart the relay and see the terminal recover by itself", async () => {
        await app.close();
        await waitForTerminal(page, "connection lost", (h) => h.status !== "online");
        await screenshot(page, "relay-down");
        app = await startTestApp({ env, spaDistDir });
        await waitForTerminal(page, "recovered", (h) => h.status === "online", 90_000);
        await typeInTerminal(page, `echo after-restart-${marker}`);
        const after = await waitForTerminal(
          page,
          "output after the restart",
          (h) => countLines(h.text, `after-restart-${marker}`) === 1,
        );
        assertEqual(countLines(after.text, `hello-${marker}`), 1, "no duplicated output");
        await screenshot(page, "relay-recovered");
      });

      await step("choose the working folder; a bad one is explained", async () => {
        const hook = (await activeHook(page))!;
        const pane = `#pane-${hook.tabId}`;
        const pick = async (path: string) => {
          await page.click(`${pane} button[title="Change the working folder"]`);
          const input = await page.waitForSelector(`${pane} .pane-panel input`);
          await input!.click({ count: 3 });
          await input!.type(path);
          await page.keyboard.press("Enter");
        };
        await pick(`/no-such-folder-${marker}`);
        await page.waitForFunction(
          (text) => document.querySelector(".toasts")?.textContent?.includes(text),
          { timeout: STEP_TIMEOUT_MS },
          "no such directory",
        );
        await pick("/tmp");
        await page.waitForFunction(
          (selector) => document.querySelector(selector)?.textContent === "/tmp",
          { timeout: STEP_TIMEOUT_MS },
          `${pane} .cwd`,
        );
        await typeInTerminal(page, "pwd");
        await waitForTerminal(page, "pwd in /tmp", (h) => countLines(h.text, "/tmp") >= 1);
        await screenshot(page, "terminal-folder-picked");
      });

      await step("record output and play the recording back", async () => {
        const hook = (await activeHook(page))!;
        const record = `#pane-${hook.tabId} button[aria-pressed][title*="ecord"]`;
        await page.click(record);
        await page.waitForSelector(`${record}[aria-pressed="true"]`, { timeout: STEP_TIMEOUT_MS });
        await typeInTerminal(page, `echo recorded-${marker}`);
        await waitForTerminal(page, "recorded output", (h) => countLines(h.text, `recorded-${marker}`) === 1);
        await screenshot(page, "terminal-recording");
        await page.click(record);
        await page.waitForSelector(`${record}[aria-pressed="false"]`, { timeout: STEP_TIMEOUT_MS });

        const player = await browser!.newPage();

        player.setDefaultTimeout(STEP_TIMEOUT_MS);
        await player.setViewport(DESKTOP);
        await waitFor(
          async () => {
            await player.goto(`${app.url}/devmode/recordings`);
            await player.waitForSelector(".recording, .empty", { timeout: STEP_TIMEOUT_MS });
            return await player.$(`.recording[data-session-id="${hook.sessionId}"]`);
          },
          "the recording to be listed",
          STEP_TIMEOUT_MS,
          POLL_MS,
        );
        await player.click(`.recording[data-session-id="${hook.sessionId}"] button`);
        await player.waitForFunction(
          (text) => document.querySelector(".player-host .xterm-rows")?.textContent?.includes(text),
          { timeout: STEP_TIMEOUT_MS },
          `recorded-${marker}`,
        );
        await screenshot(player, "recording-playback");
        await player.close();
        await page.bringToFront();
      });

      await step("connect by URL to `coda-runner serve`", async () => {
        const serveHome = await Deno.makeTempDir({ prefix: "coda-e2e-serve-" });
        extraDirs.push(serveHome);
        serve = new RunnerProcess(app.url, serveHome, ["serve", "--port", "0"]);
        const url = await serve.serveUrl();
        const manual = await browser!.newPage();
        manual.setDefaultTimeout(STEP_TIMEOUT_MS);
        await manual.setViewport({ width: 1000, height: 700 });
        await manual.goto(`${app.url}/devmode/connect`);
        await manual.waitForSelector("#manual-url");
        await manual.type("#manual-url", url);
        await manual.click("xpath/.//button[contains(., 'Connect by URL')]");
        await waitForTerminal(
          manual,
          "manual terminal online",
          (h) => h.status === "online" && /[$#] *$/m.test(h.text),
        );
        await typeInTerminal(manual, `echo manual-${marker}`);
        await waitForTerminal(manual, "manual output", (h) => countLines(h.text, `manual-${marker}`) === 1);
        await screenshot(manual, "manual-url-terminal");
        await manual.close();
        await page.bringToFront();
      });

      await step("the shell exits; a mouse click on the card's New session opens one", async () => {
        const before = (await activeHook(page))!;
        await typeInTerminal(page, "exit");
        await waitForTerminal(page, "session ended", (h) => h.status === "ended");
        await screenshot(page, "terminal-ended");
        await mouseClick(page, `#pane-${before.tabId} .overlay button::-p-text(New session)`);
        const after = await waitForTerminal(
          page,
          "a new session online",
          (h) => h.status === "online" && h.sessionId !== undefined && h.sessionId !== before.sessionId,
        );
        assertEqual(await search(page), `?session=${after.sessionId}`);
      });

      await step("revoke the runner and see the terminal explain it", async () => {
        const other = await browser!.newPage();
        other.setDefaultTimeout(STEP_TIMEOUT_MS);
        await other.setViewport(DESKTOP);
        await other.goto(`${app.url}/devmode/runners`);
        const revoke = await other.waitForSelector("xpath/.//button[contains(., 'Revoke')]");
        await revoke!.click();
        await screenshot(other, "revoke-confirm");
        const confirm = await other.waitForSelector("xpath/.//button[contains(., 'Yes, revoke')]");
        await confirm!.click();
        await other.waitForFunction(() => !document.querySelector(".runner .badge-ok"), {
          timeout: STEP_TIMEOUT_MS,
        });
        await screenshot(other, "revoked-runners");
        await other.close();
        await page.bringToFront();
        await waitForTerminal(page, "revoked state", (h) => h.status === "revoked");
        await page.waitForFunction(
          () => document.querySelector(".overlay")?.textContent?.includes("Pair again"),
          { timeout: STEP_TIMEOUT_MS },
        );
        await screenshot(page, "terminal-revoked");
        await mouseClick(page, ".overlay a::-p-text(Pair again)");
        await page.waitForFunction(() => location.pathname === "/devmode/pair", { timeout: STEP_TIMEOUT_MS });
      });

      assertEqual(pageErrors.filter((e) => !/WebSocket|Failed to load resource/.test(e)).join("\n"), "");
    } finally {
      await browser?.close();
      await (runner as RunnerProcess | null)?.stop();
      await (serve as RunnerProcess | null)?.stop();
      await app.close();
      for (const dir of [dataDir, home, profile, ...extraDirs]) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  },
});

Deno.test({
  name: "e2e at 390×844: sign up, pair, open a terminal, type, change settings; every control fits on screen",
  ignore: skipE2e,
  async fn(t) {
    requireChromium();
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    const app = await startTestApp({ spaDistDir: await builtSpa() });
    const home = await Deno.makeTempDir({ prefix: "coda-e2e-phone-home-" });
    const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
    const runner = new RunnerProcess(app.url, home);
    const marker = crypto.randomUUID().slice(0, 8);
    let browser: Browser | null = null;
    let failed = false;
    const step = async (name: string, fn: () => Promise<void>) => {
      if (failed) return;
      if (await t.step(name, fn)) return;
      failed = true;
      const last = (await browser?.pages() ?? []).at(-1);
      if (last) await screenshot(last, "failed").catch(() => {});
    };
    try {
      browser = await launchChromium(profile);
      const page = await browser.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      await page.setViewport(PHONE);
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);

      await step("sign up from the runner's link; the header fits", async () => {
        await page.goto(`${app.url}/devmode/pair?code=${await runner.pairingCode()}`);
        await page.waitForFunction(() => location.pathname === "/signin", { timeout: STEP_TIMEOUT_MS });
        // No theme chosen yet: the system's light scheme is followed.
        assertEqual(await page.evaluate(() => document.documentElement.dataset.theme), "light");
        await assertOnScreen(page, ".topbar a, .topbar button");
        await mouseClick(page, ".switch-auth a[href^='/signup']");
        await page.waitForSelector("#auth-email");
        await page.type("#auth-email", `e2e-phone-${marker}@example.com`);
        await page.type("#auth-password", "correct horse battery staple");
        await screenshot(page, "signup-form");
        await mouseClick(page, "form button[type=submit]");
        await page.waitForFunction(() => location.pathname === "/devmode/pair", { timeout: STEP_TIMEOUT_MS });
        await assertControlsOnScreen(page, null);
        await screenshot(page, "pair-code");
      });

      await step("pair the runner", async () => {
        await page.waitForSelector("#pair-code");
        await mouseClick(page, "form button[type=submit]");
        await page.waitForSelector(".facts");
        await screenshot(page, "pair-confirm");
        await mouseClick(page, "button::-p-text(Approve)");
        await page.waitForFunction(
          () => document.querySelector(".card.success")?.textContent?.includes("Online"),
          { timeout: STEP_TIMEOUT_MS },
        );
        await screenshot(page, "paired-online");
      });

      await step("open a terminal from the folded menu and type; the toolbar and key bar fit", async () => {
        await openHeaderMenu(page);
        await screenshot(page, "header-menu");
        await mouseClick(page, ".topbar a[href='/devmode/terminal']");
        await page.waitForFunction(() => location.pathname === "/devmode/terminal", {
          timeout: STEP_TIMEOUT_MS,
        });
        await mouseClick(page, "button::-p-text(Open terminal)");
        await waitForTerminal(
          page,
          "terminal online",
          (h) => h.status === "online" && /[$#] *$/m.test(h.text),
        );
        await typeInTerminal(page, `echo phone-${marker}`);
        const hook = await waitForTerminal(
          page,
          "echo output",
          (h) => countLines(h.text, `phone-${marker}`) === 1,
        );
        await assertControlsOnScreen(page, `#pane-${hook.tabId}`);
        await screenshot(page, "terminal-typed");
      });

      await step("change the font size in the settings; it is still applied after a reload", async () => {
        const hook = (await activeHook(page))!;
        const pane = `#pane-${hook.tabId}`;
        await setFontSize(page, pane, 12);
        await assertOnScreen(page, `${pane} .settings-panel input, ${pane} .settings-panel select`);
        await screenshot(page, "terminal-settings");
        await page.reload();
        await waitForTerminal(page, "reloaded at 12 px", (h) => h.status === "online" && h.fontSize === 12);
        await screenshot(page, "terminal-reloaded");
      });

      await step("sign out from the folded menu", async () => {
        await openHeaderMenu(page);
        await mouseClick(page, ".topbar button::-p-text(Sign out)");
        await page.waitForFunction(() => location.pathname === "/signin", { timeout: STEP_TIMEOUT_MS });
        await screenshot(page, "signed-out");
      });
    } finally {
      await browser?.close();
      await runner.stop();
      await app.close();
      for (const dir of [home, profile]) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "e2e: a pairing from another address is flagged; with two runners online and no default the user picks",
  ignore: skipE2e,
  async fn() {
    requireChromium();
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    const spaDistDir = await builtSpa();
    // The browser claims an address of its own through the trusted proxy header; the runners come from 127.0.0.1.
    const app = await startTestApp({ env: { DEVMODE_CLIENT_IP_HEADER: "x-e2e-client-ip" }, spaDistDir });
    const homes = [
      await Deno.makeTempDir({ prefix: "coda-e2e-home-a-" }),
      await Deno.makeTempDir({ prefix: "coda-e2e-home-b-" }),
    ];
    const profile = await Deno.makeTempDir({ prefix: "coda-e2e-chromium-" });
    const runners: RunnerProcess[] = [];
    let browser: Browser | null = null;
    try {
      const user = await signup(app.url);
      browser = await launchChromium(profile);
      const page = await browser.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      await page.setViewport(DESKTOP);
      await page.setExtraHTTPHeaders({ "x-e2e-client-ip": "198.51.100.7" });
      const [name, value] = user.cookie.split("=");
      await page.setCookie({ name, value, url: app.url });

      const first = new RunnerProcess(app.url, homes[0]);
      runners.push(first);
      await page.goto(`${app.url}/devmode/pair?code=${await first.pairingCode()}`);
      await page.waitForSelector("#pair-code");
      await page.click("form button[type=submit]");
      const warning = await page.waitForSelector("[data-testid=pair-address-warning]");
      const warned = await warning!.evaluate((el) => el.textContent ?? "");
      assert(warned.includes("different address (127.0.0.1)"), warned);
      await screenshot(page, "pair-other-address-warning");
      await (await page.waitForSelector("xpath/.//button[contains(., 'Approve')]"))!.click();
      await page.waitForSelector(".card.success");

      const second = new RunnerProcess(app.url, homes[1]);
      runners.push(second);
      await approvePairing(app.url, user.cookie, await second.pairingCode());
      type Listed = { runnerId: string; online: boolean };
      const listed = await waitFor(
        async () => {
          const list = await apiJson<Listed[]>(app.url, "/api/devmode/runners", { cookie: user.cookie });
          return list.length === 2 && list.every((r) => r.online) ? list : null;
        },
        "both runners online",
        STEP_TIMEOUT_MS,
        POLL_MS,
      );

      await page.goto(`${app.url}/devmode/terminal`);
      await page.waitForSelector("#runner-choose-hint");
      await screenshot(page, "terminal-choose-runner");
      await (await page.waitForSelector("xpath/.//button[contains(., 'Open terminal')]"))!.click();
      assertEqual(await activeHook(page), null, "no terminal opens before a runner is chosen");
      assert(await page.$("#runner-choose-hint"), "still asking");

      await page.goto(`${app.url}/devmode/runners`);
      const row = `[data-runner-id="${listed[0].runnerId}"]`;
      await (await page.waitForSelector(
        `xpath/.//li[@data-runner-id="${listed[0].runnerId}"]//button[contains(., 'Make default')]`,
      ))!
        .click();
      await page.waitForSelector(`${row} [aria-pressed=true]`);
      await page.goto(`${app.url}/devmode/terminal`);
      await (await page.waitForSelector("xpath/.//button[contains(., 'Open terminal')]"))!.click();
      assertEqual(await page.$("#runner-choose-hint"), null);
      await waitForTerminal(page, "terminal online", (h) => h.status === "online" && /[$#] *$/m.test(h.text));
      await typeInTerminal(page, "echo home=$HOME");
      await waitForTerminal(
        page,
        "the default runner's shell",
        (h) => countLines(h.text, `home=${homes[0]}`) === 1,
      );
      await screenshot(page, "terminal-on-default-runner");
    } finally {
      await browser?.close();
      for (const runner of runners) await runner.stop();
      await app.close();
      for (const dir of [...homes, profile]) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
