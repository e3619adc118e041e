import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { CloseCode, MetaLine } from "./protocol.ts";
import { ScriptedClient, ScriptedRunner, spawnTask, standaloneRelayEnv, waitFor } from "./testing.ts";

Deno.test("deno task relay beside a running app: messages flow, SIGTERM drains with 1012, exit 0", async () => {
  const app = await startTestApp();
  const task = await spawnTask("relay", standaloneRelayEnv(app));
  let runner: ScriptedRunner | undefined;
  let client: ScriptedClient | undefined;
  try {
    const line = await task.line((l) => l.includes("relay_listening"), "relay_listening");
    const relayUrl = (JSON.parse(line).url as string).replace("http", "ws");
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    runner = new ScriptedRunner(relayUrl, paired.runnerToken);
    await runner.welcome();
    const session = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    client = new ScriptedClient(relayUrl, session.token, { origin: app.config.publicUrl });
    await client.meta(MetaLine.session(session.sessionId));
    client.send({ type: "stdin", sessionId: session.sessionId, data: "whoami\r" });
    await waitFor(() => runner!.stdin(session.sessionId) === "whoami\r", "stdin at the runner");
    runner.write(session.sessionId, "me\r\n");
    await client.waitOutput("me\r\n");

    task.child.kill("SIGTERM");
    assertEquals(await client.closed, { code: CloseCode.RESTART, reason: "relay restarting" });
    assertEquals((await runner.closed).code, CloseCode.RESTART);
    const status = await task.child.status;
    await task.kill();
    const logs = task.output();
    assertEquals(status.code, 0, logs);
    assert(logs.includes('"event":"relay_shutdown"'), logs);
    assert(!logs.includes(paired.runnerToken) && !logs.includes(session.token), "tokens are never logged");
  } finally {
    await client?.close();
    await runner?.close();
    await task.kill();
    await app.close();
  }
});

Deno.test("deno task relay: a configuration error is one line and exit code 2", async () => {
  const task = await spawnTask("relay", { DEVMODE_JWT_SECRET: "short" });
  const status = await task.child.status;
  await task.kill();
  assertEquals(status.code, 2);
  assertEquals(task.output(), "relay: DEVMODE_JWT_SECRET must be at least 32 bytes long (got 5)\n");
});
