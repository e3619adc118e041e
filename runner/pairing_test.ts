/** Pairing against the real app API (in-process, real HTTP, a moved clock for expiry). */
import { deepEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { approvePairing, signup, startTestApp } from "@coda/api/testing";
import { OPEN_PROMPT, pair, pairingLink, pairingScreen } from "./pairing.ts";
import { createLogger, silentLogger } from "./log.ts";
import { waitFor } from "./testing.ts";

const MACHINE = { name: "test-box", hostname: "test-box", os: "linux" };
const codeIn = (text: string) => /devmode\/pair\?code=([A-Z0-9-]+)/.exec(text)?.[1];

Deno.test("pairing: an expired code is replaced by a fresh one, which is approved", async () => {
  let skew = 0;
  const app = await startTestApp({ now: () => Date.now() + skew });
  const printed: string[] = [];
  // pair()'s waits between polls: each moves the app's clock on by its length (so every poll keeps
  // the server's interval) once the test lets it go, instead of taking 5 real seconds.
  const waits: (() => void)[] = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) =>
      waits.push(() => {
        skew += ms;
        resolve();
      })
    );
  const nextWait = () => waitFor(() => waits.shift(), "pair() to wait before its next poll");
  try {
    const user = await signup(app.url);
    const pairing = pair({
      appUrl: app.url,
      machine: MACHINE,
      print: (text) => printed.push(text),
      log: silentLogger,
      signal: new AbortController().signal,
      qr: false,
      sleep,
    });
    const first = await waitFor(() => codeIn(printed.join("\n")), "the first code");
    (await nextWait())();
    // The first poll found the code pending: pair() waits to poll again, and the code expires meanwhile.
    const afterPending = await nextWait();
    assert(!printed.some((t) => t.includes("Here is a fresh one")));
    skew += 11 * 60 * 1000;
    afterPending();
    await waitFor(() => printed.some((t) => t.includes("Here is a fresh one")), "the code to expire");
    const second = await waitFor(() => codeIn(printed.at(-1) ?? ""), "a fresh code");
    assert(first !== second);
    await approvePairing(app.url, user.cookie, second);
    (await nextWait())();
    const credentials = await pairing;
    assertEquals(credentials.email, user.email);
    assertEquals(credentials.appUrl, app.url);
    assert(credentials.runnerToken.length > 20 && credentials.runnerId.length >= 8);
    assertEquals(pairingLink(app.url, second), `${app.url}/devmode/pair?code=${second}`);
  } finally {
    await app.close();
  }
});

Deno.test("pairing: Ctrl-C (abort) stops it at once", async () => {
  const app = await startTestApp();
  const printed: string[] = [];
  const controller = new AbortController();
  try {
    const pairing = pair({
      appUrl: app.url,
      machine: MACHINE,
      print: (text) => printed.push(text),
      log: silentLogger,
      signal: controller.signal,
    });
    await waitFor(() => codeIn(printed.join("\n")), "a code");
    assert(printed.join("\n").includes("▀") || printed.join("\n").includes("▄"), "a QR code is drawn");
    controller.abort(new DOMException("interrupted", "AbortError"));
    await rejects(pairing, { name: "AbortError" });
  } finally {
    await app.close();
  }
});

Deno.test("pairing: an app that is not running is named, with what to do", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const appUrl = `http://127.0.0.1:${listener.addr.port}`;
  listener.close();
  const lines: string[] = [];
  const controller = new AbortController();
  const pairing = pair({
    appUrl,
    machine: MACHINE,
    print: () => {},
    log: createLogger({ write: (line) => lines.push(line) }),
    signal: controller.signal,
  });
  try {
    const warning = await waitFor(() => lines.find((line) => line.startsWith("warn: ")), "a warning");
    assert(
      warning.startsWith(
        `warn: cannot reach the Coda app at ${appUrl}: start it, or set APP_URL to its address`,
      ),
      warning,
    );
  } finally {
    controller.abort(new DOMException("interrupted", "AbortError"));
    await rejects(pairing, { name: "AbortError" });
  }
});

Deno.test("pairing screen: the QR code comes first and only when it fits; the link and code come last", () => {
  const code = "ABCD-EFGH";
  const link = pairingLink("http://localhost:8080", code);
  const expiresAt = Date.now() + 600_000;
  const tall = pairingScreen("http://localhost:8080", code, expiresAt, true, { rows: 24, offerOpen: true })
    .split("\n");
  assert(tall.length + 1 <= 24, `${tall.length} lines and the cursor fit 24 rows`);
  assert(tall[0].includes("█"), "the QR code first");
  const tail = tall.slice(-5).join("\n");
  for (const needed of [link, "A B C D - E F G H", OPEN_PROMPT, "Waiting for approval"]) {
    assert(tail.includes(needed), `${needed} in the last lines`);
  }
  const short = pairingScreen("http://localhost:8080", code, expiresAt, true, { rows: 20 });
  assert(!short.includes("█"), "no QR code that would not fit");
  assert(!short.includes(OPEN_PROMPT), "no Enter to press unless offered");
  assert(
    pairingScreen("http://localhost:8080", code, expiresAt, true).includes("█"),
    "unknown height: drawn",
  );
});
