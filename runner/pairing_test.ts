/** Pairing against the real app API (in-process, real HTTP, a moved clock for expiry). */
import { deepEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { approvePairing, signup, startTestApp } from "../api/testing.ts";
import { pair, pairingLink } from "./pairing.ts";
import { silentLogger } from "./log.ts";
import { waitFor } from "./_testing.ts";

const MACHINE = { name: "test-box", hostname: "test-box", os: "linux" };
const codeIn = (text: string) => /devmode\/pair\?code=([A-Z0-9-]+)/.exec(text)?.[1];

Deno.test("pairing: an expired code is replaced by a fresh one, which is approved", async () => {
  let skew = 0;
  const app = await startTestApp({ now: () => Date.now() + skew });
  const printed: string[] = [];
  try {
    const user = await signup(app.url);
    const pairing = pair({
      appUrl: app.url,
      machine: MACHINE,
      print: (text) => printed.push(text),
      log: silentLogger,
      signal: new AbortController().signal,
      qr: false,
    });
    const first = await waitFor(() => codeIn(printed.join("\n")), "the first code");
    skew = 11 * 60 * 1000;
    await waitFor(() => printed.some((t) => t.includes("Here is a fresh one")), "the code to expire", 30_000);
    const second = await waitFor(() => codeIn(printed.at(-1) ?? ""), "a fresh code", 30_000);
    assert(first !== second);
    await approvePairing(app.url, user.cookie, second);
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
