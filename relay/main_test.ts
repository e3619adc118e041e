import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startTestApp } from "../api/server.ts";
import { createSession, pairRunner, signup } from "../api/testing.ts";
import { CloseCode, MetaLine } from "./protocol.ts";
import { ScriptedClient, ScriptedRunner, standaloneRelayEnv, waitFor } from "./testing.ts";

const root = new URL("../", import.meta.url);

/** The variables Deno itself needs to find its caches. */
function inherited(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** Spawns the relay exactly as `deno task relay` runs it (flags read from deno.json). */
async function spawnRelay(env: Record<string, string>): Promise<Deno.ChildProcess> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks as Record<
    string,
    string
  >;
  const [command, ...args] = tasks.relay.split(/\s+/);
  assertEquals(command, "deno");
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: root.pathname,
    env: { ...inherited(), ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Reads stderr until a line matches; the rest keeps being collected into `rest`. */
async function readUntil(
  child: Deno.ChildProcess,
  match: (line: string) => boolean,
): Promise<{ line: string; rest: Promise<string> }> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`relay exited before the expected line; stderr: ${buffer}`);
    buffer += value;
    const line = buffer.split("\n").find(match);
    if (line) {
      const rest = (async () => {
        let tail = buffer;
        while (true) {
          const next = await reader.read();
          if (next.done) return tail;
          tail += next.value;
        }
      })();
      return { line, rest };
    }
  }
}

Deno.test("deno task relay beside a running app: messages flow, SIGTERM drains with 1012, exit 0", async () => {
  const app = await startTestApp();
  const child = await spawnRelay(standaloneRelayEnv(app));
  let runner: ScriptedRunner | undefined;
  let client: ScriptedClient | undefined;
  try {
    const { line, rest } = await readUntil(child, (l) => l.includes("relay_listening"));
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

    child.kill("SIGTERM");
    assertEquals(await client.closed, { code: CloseCode.RESTART, reason: "relay restarting" });
    assertEquals((await runner.closed).code, CloseCode.RESTART);
    const status = await child.status;
    const logs = await rest;
    assertEquals(status.code, 0, logs);
    assert(logs.includes('"event":"relay_shutdown"'), logs);
    assert(!logs.includes(paired.runnerToken) && !logs.includes(session.token), "tokens are never logged");
  } finally {
    await client?.close();
    await runner?.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await app.close();
  }
});

Deno.test("deno task relay: a configuration error is one line and exit code 2", async () => {
  const child = await spawnRelay({ DEVMODE_JWT_SECRET: "short" });
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
  assertEquals(status.code, 2);
  assertEquals(stderr, "relay: DEVMODE_JWT_SECRET must be at least 32 bytes long (got 5)\n");
});
