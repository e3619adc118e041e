/**
 * Watch-only shares end to end: the app and its relay, a real runner with a real shell, an owner's
 * client and a viewer's, both over real WebSockets.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  apiJson,
  createSession,
  pairRunner,
  shareSession,
  signup,
  startTestApp,
  watchTicket,
} from "@coda/api/testing";
import type { ShareView } from "@coda/api/contract";
import { CloseCode, CloseReason } from "@coda/relay/protocol";
import { startInProcessRunner, TestClient, waitFor } from "./testing.ts";

Deno.test("a viewer of a share sees the shell, never types into it, and is cut when the owner revokes the share", async () => {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-share-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
  const origin = { origin: app.config.publicUrl };
  try {
    await waitFor(() => runner.link.connections > 0, "the runner to connect");
    const session = await createSession(app.url, user.cookie, { ideaId: "i", runnerId: paired.runnerId });
    const { sessionId } = session;
    const owner = new TestClient(`${app.relayUrl}/client?token=${session.token}&cols=90&rows=20`, origin);
    await owner.opened;
    owner.send({ type: "stdin", sessionId, data: "echo before-$((6 * 7))\r" });
    await owner.waitForOutput("before-42");

    const shared = await shareSession(app.url, user.cookie, sessionId);
    const ticket = await watchTicket(app.url, shared.url);
    const { token } = await ticket.json();
    const viewer = new TestClient(`${app.relayUrl}/client?token=${token}&cols=10&rows=5`, origin, {
      binary: true,
    });
    await viewer.opened;
    await viewer.waitForOutput("before-42");
    await waitFor(async () => {
      const shares = await apiJson<ShareView[]>(app.url, `/api/devmode/sessions/${sessionId}/shares`, {
        cookie: user.cookie,
      });
      return shares[0]?.viewers.length === 1;
    }, "the owner to see the viewer");

    // Everything a page could send: none of it reaches the shell.
    viewer.send({ type: "stdin", sessionId, data: "touch pwned\r" });
    viewer.send({ type: "resize", sessionId, cols: 11, rows: 3 });
    viewer.send({ type: "kill", sessionId });
    owner.send({ type: "stdin", sessionId, data: "touch owned; stty size; echo after-$((6 * 7))\r" });
    await owner.waitForOutput("after-42");
    await viewer.waitForOutput("after-42");
    assert(owner.output().includes("20 90"), "the owner's size stands");
    assert(existsSync(`${home}/owned`), "the owner's keystrokes ran, in this directory");
    assert(!existsSync(`${home}/pwned`), "the viewer's never did");

    const started = Date.now();
    await apiJson(app.url, `/api/devmode/shares/${shared.share.shareId}`, {
      cookie: user.cookie,
      method: "DELETE",
    });
    assertEquals(await viewer.closed, { code: CloseCode.REVOKED, reason: CloseReason.SHARE_REVOKED });
    assert(Date.now() - started < 5000, `cut after ${Date.now() - started} ms`);
    owner.send({ type: "stdin", sessionId, data: "echo still-$((6 * 7))\r" });
    await owner.waitForOutput("still-42");
    await owner.close();
  } finally {
    await runner.stop();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
});
