/**
 * Attacks on the real `deno task start` process, run under a low
 * `ulimit -n`: the process must stay up, bounded, and serve a signed-in
 * user's terminal afterwards.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createSession, pairRunner, signup } from "./testing.ts";
import { MetaLine } from "@coda/relay/protocol";
import { ScriptedClient, ScriptedRunner, type SpawnedTask, spawnTask, waitFor } from "@coda/relay/testing";

const MiB = 1024 * 1024;

/** Starts `deno task start` on a fresh data directory; resolves the task and its URL. */
async function startApp(nofile: { soft: number; hard?: number }): Promise<{
  task: SpawnedTask;
  url: string;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-edge-" });
  const task = await spawnTask("start", { HOST: "127.0.0.1", PORT: "0", DEVMODE_DATA_DIR: dataDir }, {
    nofile,
  });
  const line = await task.line((l) => l.includes("listening on "), "the listening line");
  const url = /listening on (http:\/\/[^)\s]+)/.exec(line)![1];
  return {
    task,
    url,
    async [Symbol.asyncDispose]() {
      await task.kill();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** A signed-in user's terminal through the process: a scripted runner and a client. */
async function openTerminal(url: string) {
  const relayUrl = url.replace(/^http/, "ws");
  const user = await signup(url);
  const paired = await pairRunner(url, user.cookie);
  const runner = new ScriptedRunner(relayUrl, paired.runnerToken);
  const session = await createSession(url, user.cookie, { ideaId: "idea-edge" });
  const client = new ScriptedClient(relayUrl, session.token);
  await runner.welcome();
  await client.meta(MetaLine.session(session.sessionId));
  return {
    /** Types `word` and echoes it back through the runner. */
    async roundTrip(word: string) {
      const typed = runner.stdin(session.sessionId) + `echo ${word}\r`;
      client.send({ type: "stdin", sessionId: session.sessionId, data: `echo ${word}\r` });
      await waitFor(() => runner.stdin(session.sessionId) === typed, "stdin at the runner");
      runner.write(session.sessionId, `${word}\r\n`);
      await client.waitOutput(`${word}\r\n`);
    },
    async close() {
      await client.close();
      await runner.close();
    },
  };
}

/** A signed-in user's terminal works end to end through the process. */
async function terminalWorks(url: string): Promise<void> {
  const terminal = await openTerminal(url);
  try {
    await terminal.roundTrip("ok");
  } finally {
    await terminal.close();
  }
}

/** The head of a masked client frame announcing `length` payload bytes. */
function frameHead(opcodeByte: number, length: number): Uint8Array {
  const head = new Uint8Array(14);
  head[0] = opcodeByte;
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setBigUint64(2, BigInt(length));
  head.set(crypto.getRandomValues(new Uint8Array(4)), 10);
  return head;
}

/**
 * One attacker: asks to upgrade `path` with no valid token, then — whatever
 * the answer — sends a frame announcing 60 MiB (or, `fragmented`, text and
 * continuation frames that never set FIN) and `sendBytes` of its payload.
 * Resolves the HTTP status it was answered with.
 */
async function attack(url: string, path: string, fragmented: boolean, sendBytes: number): Promise<number> {
  const target = new URL(url);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  try {
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    const status = n === null ? 0 : Number(new TextDecoder().decode(buffer.subarray(0, n)).split(" ")[1]);
    const chunk = new Uint8Array(MiB);
    try {
      if (fragmented) {
        await conn.write(frameHead(0x01, MiB));
        await conn.write(chunk);
        for (let sent = MiB; sent < sendBytes; sent += MiB) {
          await conn.write(frameHead(0x00, MiB));
          await conn.write(chunk);
        }
      } else {
        await conn.write(frameHead(0x81, 60 * MiB));
        for (let sent = 0; sent < sendBytes; sent += MiB) await conn.write(chunk);
      }
    } catch {
      // The server hung up on the garbage: what a refused peer should get.
    }
    return status;
  } finally {
    conn.close();
  }
}

Deno.test("deno task start: unauthenticated 60 MiB frames and endless fragments are refused before any upgrade; RSS stays flat", async () => {
  await using app = await startApp({ soft: 256, hard: 256 });
  assertEquals((await fetch(`${app.url}/healthz`)).status, 200);
  await terminalWorks(app.url);
  const before = await app.task.rss();
  let peak = before;
  const attackers = [];
  for (let i = 0; i < 20; i++) {
    const path = i % 2 === 0 ? "/runner" : "/client?token=garbage";
    attackers.push(
      attack(app.url, path, i % 4 >= 2, 16 * MiB).then(async (status) => {
        peak = Math.max(peak, await app.task.rss());
        return status;
      }),
    );
  }
  const statuses = await Promise.all(attackers);
  const after = await app.task.rss();
  console.log(
    `RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, ` +
      `after ${(after / MiB).toFixed(0)} MiB under 20 peers × 16 MiB`,
  );
  assertEquals(statuses, statuses.map(() => 401));
  assert(peak - before < 40 * MiB, `RSS grew by ${((peak - before) / MiB).toFixed(0)} MiB`);
  assertEquals((await fetch(`${app.url}/healthz`)).status, 200);
  await terminalWorks(app.url);
});

Deno.test("deno task start: 600 half-sent requests under ulimit -n 256 do not kill it; it serves again once they go", async () => {
  await using app = await startApp({ soft: 200, hard: 256 });
  const limits = await app.task.nofile();
  assertEquals(limits, { soft: 256, hard: 256 });
  await app.task.line((l) => l.includes("open-file limit 256, hard 256"), "the open-file limit logged");
  const terminal = await openTerminal(app.url);
  const target = new URL(app.url);
  const attackers: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 600; i++) {
      // Once the accept queue is full a connect hangs in SYN retries: give each a moment only.
      const conn = await Deno.connect({
        hostname: target.hostname,
        port: Number(target.port),
        signal: AbortSignal.timeout(200),
      }).catch(() => null);
      if (!conn) continue;
      attackers.push(conn);
      await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")).catch(() => 0);
    }
    await app.task.line((l) => l.includes('"descriptorsExhausted":true'), "the listener dying of EMFILE");
    console.log(
      `held ${attackers.length} half-sent requests; the app has ${await app.task.openFiles()} descriptors`,
    );
    await terminal.roundTrip("during");
  } finally {
    for (const conn of attackers) conn.close();
  }
  await waitFor(async () => {
    try {
      return (await fetch(`${app.url}/healthz`)).status === 200;
    } catch {
      return false;
    }
  }, "/healthz answering again");
  await terminal.roundTrip("after");
  await terminal.close();
  await terminalWorks(app.url);
  assert(app.task.output().includes('"event":"listener_restarted"'), app.task.output());
});
