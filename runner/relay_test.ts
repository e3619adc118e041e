/**
 * The runner against the real app and relay, in this process: real HTTP,
 * real WebSockets, real PTYs, a real KV file.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  apiJson,
  apiRequest,
  createSession,
  pairRunner,
  revokeRunner,
  signup,
  startTestApp,
} from "@coda/api/testing";
import { rawWebSocket, readServerFrames, spawnTask, standaloneRelayEnv } from "@coda/relay/testing";
import { probeRelay } from "./link.ts";
import { DEFAULT_FLOW_LIMITS } from "./session.ts";
import { base64Lines, onTerminal, startInProcessRunner, TestClient, waitFor } from "./testing.ts";

/** A port that was free a moment ago, for a server that must come back at the same address. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * The app, a standalone relay as a subprocess (`relay`, SIGKILL-able) and a runner in this process
 * connected to it; `resume` starts the relay again at the same address and opens a binary client there.
 */
async function killableRelaySetup() {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-runner-home-" });
  const env = { ...standaloneRelayEnv(app), PORT: String(freePort()) };
  const startRelay = async () => {
    const task = await spawnTask("relay", env);
    const line = await task.line((l) => l.includes("relay_listening"), "relay_listening");
    return { task, url: (JSON.parse(line).url as string).replace("http", "ws") };
  };
  let relay = await startRelay();
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(relay.url, paired.runnerToken, home);
  const origin = { origin: app.config.publicUrl };
  return {
    app,
    home,
    user,
    paired,
    runner,
    origin,
    get relay() {
      return relay;
    },
    /** A new session of the runner, once it is connected, with a binary client attached. */
    async open(): Promise<{ sessionId: string; client: TestClient }> {
      await waitFor(() => runner.link.connections === 1, "the runner to connect");
      const created = await createSession(app.url, user.cookie, {
        ideaId: "idea-1",
        runnerId: paired.runnerId,
      });
      const client = new TestClient(`${relay.url}/client?token=${created.token}`, origin, { binary: true });
      await client.opened;
      return { sessionId: created.sessionId, client };
    },
    /** Starts the relay again, and resumes `sessionId` from `offset` in a new binary client once the runner is back. */
    async resume(sessionId: string, offset: number): Promise<TestClient> {
      relay = await startRelay();
      await waitFor(() => runner.link.connections === 2, "the runner to reconnect", 30_000);
      const again = await createSession(app.url, user.cookie, {
        ideaId: "idea-1",
        runnerId: paired.runnerId,
        sessionId,
      });
      return new TestClient(`${relay.url}/client?token=${again.token}&offset=${offset}`, origin, {
        binary: true,
      });
    },
  };
}

async function setup() {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-runner-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home, {
    recording: { appUrl: app.url, runnerToken: paired.runnerToken },
  });
  await waitFor(() => runner.link.connections > 0, "the runner to connect");
  return {
    app,
    home,
    user,
    paired,
    runner,
    async clientFor(session?: { sessionId: string }, query = "", options: { binary?: boolean } = {}) {
      const created = await createSession(app.url, user.cookie, {
        ideaId: "idea-1",
        runnerId: paired.runnerId,
        ...session,
      });
      const client = new TestClient(
        `${app.relayUrl}/client?token=${created.token}${query}`,
        undefined,
        options,
      );
      await client.opened;
      return { client, sessionId: created.sessionId };
    },
    async [Symbol.asyncDispose]() {
      await runner.stop();
      await app.close();
      await Deno.remove(home, { recursive: true });
    },
  };
}

Deno.test("through the relay: echo round trip and two clients on one session", async () => {
  await using t = await setup();
  const { client: first, sessionId } = await t.clientFor(undefined, "&cols=120&rows=40");
  await waitFor(() => first.metas().includes(`coda:session:${sessionId}`), "session meta");
  await waitFor(() => first.metas().includes(`coda:cwd:${t.home}`), "cwd meta");
  first.send({ type: "stdin", sessionId, data: "echo hello-$((6 * 7))\r" });
  await first.waitForOutput("hello-42");
  first.send({ type: "stdin", sessionId, data: "stty size\r" });
  await first.waitForOutput("40 120");

  const { client: second } = await t.clientFor({ sessionId });
  await second.waitForOutput("hello-42");
  second.send({ type: "stdin", sessionId, data: "echo both-$((1 + 1))\r" });
  await first.waitForOutput("both-2");
  await second.waitForOutput("both-2");
  assertEquals(t.runner.manager.get(sessionId)!.stats().clients, 2);

  await first.close();
  await waitFor(() => t.runner.manager.get(sessionId)!.stats().clients === 1, "the detach");
  second.send({ type: "stdin", sessionId, data: "exit 3\r" });
  const closed = await second.closed;
  assertEquals(closed.code, 1000);
  assert(second.metas().includes("coda:exit:3"));
});

Deno.test("a relay restart keeps the PTY, and output resumes by offset with no gap or duplicate", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-runner-data-" });
  let app = await startTestApp({ env: { DEVMODE_DATA_DIR: dataDir } });
  const port = new URL(app.url).port;
  const home = await Deno.makeTempDir({ prefix: "coda-runner-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
  try {
    await waitFor(() => runner.link.connections === 1, "the runner to connect");
    const created = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const { sessionId } = created;
    const first = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
    await first.opened;
    first.send({
      type: "stdin",
      sessionId,
      data:
        "echo $$ > pid.txt; for i in $(seq 1 150); do echo line-$i; sleep 0.02; done; echo all-$((100 + 50))\r",
    });
    await first.waitForOutput("line-20");
    const pid = runner.manager.get(sessionId)!.stats();
    assert(pid.produced > 0);

    await app.close();
    const closed = await first.closed;
    assertEquals(closed.code, 1012);
    const had = first.output();
    const offset = first.offset;
    assert(!had.includes("all-150"), "the loop was still running when the relay went away");

    app = await startTestApp({ env: { DEVMODE_DATA_DIR: dataDir, PORT: port } });
    await waitFor(() => runner.link.connections === 2, "the runner to reconnect", 30_000);
    const again = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
      sessionId,
    });
    const second = new TestClient(`${app.relayUrl}/client?token=${again.token}&offset=${offset}`);
    await second.opened;
    await second.waitForOutput("all-150");
    const stdout = second.frames.filter((f) => f.type === "stdout");
    assertEquals(stdout[0].offset, offset, "resumed exactly where the client stopped");
    assert(!second.metas().some((m) => m.startsWith("coda:gap") || m === "coda:reset"));
    const whole = had + second.output();
    const lines = whole.split(/[\r\n]+/).map((l) => l.trim()).filter((l) => /^line-\d+$/.test(l));
    assertEquals(lines, Array.from({ length: 150 }, (_, i) => `line-${i + 1}`));
    await second.close();
  } finally {
    await runner.stop();
    await app.close();
    await Deno.remove(home, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("revoking the runner closes its link with 4403 and the link stops", async () => {
  await using t = await setup();
  await revokeRunner(t.app.url, t.user.cookie, t.paired.runnerId);
  assertEquals(await t.runner.done, "revoked");
});

Deno.test("flow control through the relay keeps the runner bounded under yes; Ctrl-C stops it", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.clientFor();
  await waitFor(() => client.metas().includes(`coda:session:${sessionId}`), "attach");
  client.send({ type: "stdin", sessionId, data: "yes\r" });
  const session = () => t.runner.manager.get(sessionId)!;
  await waitFor(() => session().stats().produced > 4 * 1024 * 1024, "4 MiB of yes", 60_000);
  let worstUnacked = 0;
  for (let i = 0; i < 50; i++) {
    const stats = session().stats();
    worstUnacked = Math.max(worstUnacked, stats.produced - stats.acked);
    assert(stats.heldBytes <= 1024 * 1024 + 128 * 1024, `replay buffer grew to ${stats.heldBytes}`);
    assert(t.runner.link.bufferedAmount() <= 4 * 1024 * 1024, "link send buffer bounded");
    await new Promise((r) => setTimeout(r, 20));
  }
  // The window's ceiling, plus what node-pty had read before the pause took effect.
  const bound = DEFAULT_FLOW_LIMITS.maxWindow + 256 * 1024;
  assert(worstUnacked <= bound, `unacknowledged output reached ${worstUnacked}`);
  assertEquals(client.socket.readyState, WebSocket.OPEN, "the relay never had to close the client 4413");
  client.send({ type: "stdin", sessionId, data: "\x03" });
  client.send({ type: "stdin", sessionId, data: "echo stopped-$((7 * 6))\r" });
  await client.waitForOutput("stopped-42", 60_000);
  client.frames.length = 0;
});

Deno.test("recording mirrors output to logs ingest, readable by the owner", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.clientFor();
  await waitFor(() => client.metas().includes(`coda:session:${sessionId}`), "attach");
  client.send({ type: "record", sessionId, on: true });
  await waitFor(() => client.metas().includes("coda:record:on"), "record on");
  client.send({ type: "stdin", sessionId, data: "echo recorded-$((5 * 5))\r" });
  await client.waitForOutput("recorded-25");
  const cast = await waitFor(async () => {
    const response = await apiRequest(t.app.url, `/api/devmode/logs/${sessionId}`, { cookie: t.user.cookie });
    const text = await response.text();
    return response.status === 200 && text.includes("recorded-25") ? text : undefined;
  }, "the recording to reach the app");
  assert(cast.split("\n")[0].includes('"version":2'));
  client.send({ type: "record", sessionId, on: false });
  await waitFor(() => client.metas().includes("coda:record:off"), "record off");
});

Deno.test("a status probe leaves the running runner and its clients undisturbed", async () => {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-runner-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
  try {
    await waitFor(() => runner.link.connections === 1, "the runner to connect");
    const created = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const { sessionId } = created;
    const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
    await client.opened;
    client.send({
      type: "stdin",
      sessionId,
      data: "for i in $(seq 1 50); do echo row-$i; sleep 0.02; done; echo fin-$((50 + 50))\r",
    });
    await client.waitForOutput("row-10");
    assertEquals(await probeRelay(app.relayUrl, paired.runnerToken), "accepted");
    await client.waitForOutput("fin-100", 30_000);
    assertEquals(runner.link.connections, 1);
    assert(!client.metas().includes("coda:relay:offline"), client.metas().join(","));
    const rows = client.output().split(/[\r\n]+/).map((l) => l.trim()).filter((l) => /^row-\d+$/.test(l));
    assertEquals(rows, Array.from({ length: 50 }, (_, i) => `row-${i + 1}`));
    await client.close();
  } finally {
    await runner.stop();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a second runner with the same credentials takes over; the first stops and says why", async () => {
  const app = await startTestApp();
  const homes = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const first = startInProcessRunner(app.relayUrl, paired.runnerToken, homes[0]);
  let second: ReturnType<typeof startInProcessRunner> | undefined;
  try {
    await waitFor(() => first.link.connections === 1, "the first runner to connect");
    second = startInProcessRunner(app.relayUrl, paired.runnerToken, homes[1]);
    assertEquals(await first.done, "replaced");
    await waitFor(() => second!.link.connections === 1, "the second runner to connect");
    const created = await createSession(app.url, user.cookie, {
      ideaId: "idea-2",
      runnerId: paired.runnerId,
    });
    const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
    await client.opened;
    client.send({ type: "stdin", sessionId: created.sessionId, data: "echo second-$((20 + 22))\r" });
    await client.waitForOutput("second-42");
    assert(second.manager.get(created.sessionId), "the session runs on the second runner");
    await client.close();
  } finally {
    await first.stop();
    await second?.stop();
    await app.close();
    for (const home of homes) await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a replay heavy in control characters reaches a new client without taking the runner's link down", async () => {
  await using t = await setup();
  const { client: first, sessionId } = await t.clientFor();
  await waitFor(() => first.metas().includes(`coda:session:${sessionId}`), "session meta");
  // 200,000 × \x01: 1.2 MB once JSON-escaped; 256 KiB of it made one 1.5 MiB frame, past the relay's 1 MiB limit.
  first.send({
    type: "stdin",
    sessionId,
    data: "head -c 200000 /dev/zero | tr '\\0' '\\1'; echo; echo done-$((4 * 5))\r",
  });
  await first.waitForOutput("done-20");
  const { client: second } = await t.clientFor({ sessionId });
  await second.waitForOutput("done-20");
  assert(second.output().split("\x01").length - 1 >= 200_000, "the whole control-character run is replayed");
  assert(!second.metas().some((line) => line.startsWith("coda:gap:")), second.metas().join());
  assertEquals(t.runner.link.connections, 1);
  assert(first.socket.readyState === WebSocket.OPEN && second.socket.readyState === WebSocket.OPEN);
  await first.close();
  await second.close();
});

Deno.test("a runner restart ends the sessions it ran (coda:ended:runner-restarted) instead of replacing the shells", async () => {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-runner-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const first = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
  let second: ReturnType<typeof startInProcessRunner> | undefined;
  try {
    await waitFor(() => first.link.connections === 1, "the first runner to connect");
    const ticket = () => createSession(app.url, user.cookie, { ideaId: "idea-1", runnerId: paired.runnerId });
    const created = await ticket();
    const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`);
    await client.opened;
    client.send({ type: "stdin", sessionId: created.sessionId, data: "echo before-$((20 + 22))\r" });
    await client.waitForOutput("before-42");
    const parked = await ticket();
    const leaving = new TestClient(`${app.relayUrl}/client?token=${parked.token}`);
    await leaving.opened;
    await waitFor(() => leaving.metas().some((m) => m.startsWith("coda:cwd:")), "the parked session's shell");
    await leaving.close();
    await first.stop();
    await waitFor(() => client.metas().includes("coda:relay:offline"), "the relay to see the runner go");

    second = startInProcessRunner(app.relayUrl, paired.runnerToken, home);
    // The relay re-attaches the waiting client with the offset it has: the new process never ran it.
    await waitFor(
      () => client.metas().includes("coda:ended:runner-restarted"),
      "the session to be told it ended",
    );
    assertEquals(await client.closed, { code: 1000, reason: "session ended" });
    assertEquals(second.manager.list(), [], "no shell was started under the old id");

    // The app heard it end: reattaching it is refused in words, and the list leaves it out.
    const refused = await apiRequest(app.url, "/api/devmode/sessions", {
      cookie: user.cookie,
      body: { ideaId: "idea-1", sessionId: created.sessionId },
    });
    assertEquals([refused.status, await refused.json()], [410, { error: "this session has ended" }]);

    // A session nobody was attached to when the runner restarted, reattached from the list with nothing
    // on screen (offset 0): the app knows it ran, so the runner says it ended instead of starting a shell.
    const idle = await createSession(app.url, user.cookie, { ideaId: "idea-1", sessionId: parked.sessionId });
    const listed = await apiJson<{ sessionId: string }[]>(app.url, "/api/devmode/sessions", {
      cookie: user.cookie,
    });
    assertEquals(listed.map((s) => s.sessionId), [parked.sessionId]);
    const reattached = new TestClient(`${app.relayUrl}/client?token=${idle.token}`);
    await reattached.opened;
    await waitFor(
      () => reattached.metas().includes("coda:ended:runner-restarted"),
      "the reattach to be told",
    );
    assertEquals((await reattached.closed).code, 1000);
    assertEquals(second.manager.list(), []);
    await waitFor(
      async () =>
        (await apiJson<unknown[]>(app.url, "/api/devmode/sessions", { cookie: user.cookie })).length === 0,
      "the list to drop it",
    );

    // A new session still gets a shell.
    const fresh = await ticket();
    const other = new TestClient(`${app.relayUrl}/client?token=${fresh.token}`);
    await other.opened;
    other.send({ type: "stdin", sessionId: fresh.sessionId, data: "echo after-$((40 + 2))\r" });
    await other.waitForOutput("after-42");
    await other.close();
  } finally {
    await second?.stop();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("through the relay the bytes are exact: binary and JSON clients see one stream, characters split across reads included", async () => {
  await using t = await setup();
  const data = base64Lines(600_000);
  await Deno.writeTextFile(`${t.home}/data.b64`, data);
  const { client: binary, sessionId } = await t.clientFor(undefined, "", { binary: true });
  assertEquals(binary.socket.protocol, "coda.v2");
  const { client: json } = await t.clientFor({ sessionId });
  await waitFor(() => json.metas().includes(`coda:session:${sessionId}`), "the JSON client's attach");
  // é and 😀 each cut between two writes, so between two PTY reads.
  binary.send({
    type: "stdin",
    sessionId,
    data: "cat data.b64; printf '\\303'; sleep 0.01; printf '\\251\\360\\237'; sleep 0.01; " +
      "printf '\\230\\200\\n'; echo done-$((6 * 7))\r",
  });
  await binary.waitForOutput("done-42", 60_000);
  await json.waitForOutput("done-42", 60_000);
  const expected = onTerminal(data) + "é😀\r\n";
  const bytes = binary.received();
  assert(new TextDecoder().decode(bytes).includes(expected), "the binary client has every byte");
  assert(json.output().includes(expected), "the JSON client has every character");
  assertEquals(new TextEncoder().encode(json.output()), bytes, "one stream, byte for byte");
  assert(!binary.output().includes("\ufffd") && !json.output().includes("\ufffd"));
  assert(binary.frames.some((f) => f.type === "stdout" && !f.replay), "live output is not marked replay");

  // A client joining later gets the history as replay, marked so; the offsets count bytes.
  const { client: late } = await t.clientFor({ sessionId }, "", { binary: true });
  await late.waitForOutput("done-42");
  const replayed = late.frames.filter((f) => f.type === "stdout");
  assert(replayed.every((f) => f.replay === true), "every replayed frame is marked replay");
  assertEquals(late.received(), bytes);
  assertEquals(replayed.at(-1)!.offset! + late.bytes.at(-1)!.length, bytes.length);
  await Promise.all([binary.close(), json.close(), late.close()]);
});

Deno.test("a SIGKILLed relay under a full-speed stream loses nothing: the PTY waits for the client to come back", async () => {
  const s = await killableRelaySetup();
  const { app, home, runner } = s;
  try {
    // 8 MB: far more than the 2 MiB ring, and more than cat writes while a relay starts.
    const data = base64Lines(6_000_000);
    await Deno.writeTextFile(`${home}/data.b64`, data);
    const { sessionId, client: first } = await s.open();
    await waitFor(() => first.metas().includes(`coda:session:${sessionId}`), "the attach");
    first.send({ type: "stdin", sessionId, data: "cat data.b64; echo done-$((6 * 7))\r" });
    await waitFor(() => first.offset > 1024 * 1024, "the stream to be under way");
    await s.relay.task.kill();
    await first.closed;
    await waitFor(
      () => runner.link.connections === 1 && !runner.link.connected,
      "the runner to see the link go",
    );
    const had = first.received();
    assert(!new TextDecoder().decode(had).includes("done-42"), "cat was still running when the relay died");

    const second = await s.resume(sessionId, had.length);
    await second.opened;
    await second.waitForOutput("done-42", 60_000);
    assert(
      !second.metas().some((m) => m.startsWith("coda:gap") || m === "coda:reset"),
      second.metas().join(),
    );
    assertEquals(
      second.frames.find((f) => f.type === "stdout")!.offset,
      had.length,
      "resumed where it stopped",
    );
    const whole = new Uint8Array([...had, ...second.received()]);
    assert(new TextDecoder().decode(whole).includes(onTerminal(data)), "every byte of the stream, once");
    await second.close();
  } finally {
    await runner.stop();
    await s.relay.task.kill();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a shell that exits while the relay is down: the client resuming by offset gets the output it missed and the exit", async () => {
  const s = await killableRelaySetup();
  const { app, home, runner } = s;
  try {
    const { sessionId, client: first } = await s.open();
    first.send({
      type: "stdin",
      sessionId,
      data: "while [ ! -e go ]; do sleep 0.02; done; echo after-$((6 * 7)); exit 3\r",
    });
    await first.waitForOutput("exit 3");
    const session = runner.manager.get(sessionId)!;
    await s.relay.task.kill();
    await first.closed;
    await waitFor(() => !runner.link.connected, "the runner to see the link go");
    await Deno.writeTextFile(`${home}/go`, "");
    await session.exited;
    const had = first.received();

    const second = await s.resume(sessionId, had.length);
    const closed = await second.closed;
    assertEquals([closed.code, closed.reason], [1000, "session ended"], second.metas().join());
    assert(second.output().includes("after-42"), "the output it missed");
    assertEquals(second.frames.find((f) => f.type === "stdout")!.offset, had.length, "from where it stopped");
    assert(second.metas().includes("coda:exit:3"), second.metas().join());
    assert(!second.metas().some((m) => m.startsWith("coda:ended:")), second.metas().join());
  } finally {
    await runner.stop();
    await s.relay.task.kill();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("through the relay a session that ends under a full-speed stream delivers its last byte before the close", async () => {
  await using t = await setup();
  const data = base64Lines(3_000_000);
  await Deno.writeTextFile(`${t.home}/data.b64`, data);
  for (const binary of [true, false]) {
    const { client, sessionId } = await t.clientFor(undefined, "&ack=1", { binary });
    await waitFor(() => client.metas().includes(`coda:session:${sessionId}`), "the attach");
    // Acks as it receives, as the SPA does once it has rendered (and not once the socket is closing).
    const acker = setInterval(() => {
      if (client.socket.readyState === WebSocket.OPEN) {
        client.send({ type: "ack", sessionId, offset: client.offset });
      }
    }, 5);
    client.send({ type: "stdin", sessionId, data: "stty -echo; cat data.b64; exit 3\r" });
    const closed = await client.closed;
    clearInterval(acker);
    if (binary) assertEquals(closed, { code: 1000, reason: "session ended" });
    // Known, left open: with the machine starved of CPU, about 1 run in 10 ends the JSON client's connection
    // with a reset (Deno's client reports code 0) after every byte and the exit line arrived. What must hold
    // whatever the close: nothing is lost before it.
    else assert(closed.code === 1000 || closed.code === 0, JSON.stringify(closed));
    const got = binary ? client.received() : new TextEncoder().encode(client.output());
    const text = new TextDecoder().decode(got);
    assert(text.includes(onTerminal(data)), `every byte up to the close (binary ${binary})`);
    assert(client.metas().includes("coda:exit:3"));
  }
});

/** A client frame by hand: masked (with a zero key, which RFC 6455 allows), text, under 126 bytes. */
function clientTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  assert(payload.length < 126);
  return new Uint8Array([0x81, 0x80 | payload.length, 0, 0, 0, 0, ...payload]);
}

Deno.test("a spec-only client that stops reading control-heavy output is held, not closed 4413: its window counts JSON", async () => {
  await using t = await setup();
  const { client: typist, sessionId } = await t.clientFor();
  await waitFor(() => typist.metas().includes(`coda:session:${sessionId}`), "attach");
  // 4 MB of \x01, 24 MB as JSON, once a line is typed: by the stalled client, the session's only one.
  const run = "read go; head -c 4000000 /dev/zero | tr '\\0' '\\1'; echo; echo done-$((6 * 7))";
  typist.send({ type: "stdin", sessionId, data: `${run}\r` });
  await typist.waitForOutput("done-$((6 * 7))");
  await typist.close();
  const { token } = await createSession(t.app.url, t.user.cookie, {
    ideaId: "idea-1",
    runnerId: t.paired.runnerId,
    sessionId,
  });
  const stalled = await rawWebSocket(`${t.app.relayUrl}/client?token=${token}`);
  try {
    const session = () => t.runner.manager.get(sessionId)!;
    await waitFor(() => session().stats().clients === 1, "the stalled client to attach");
    await stalled.write(clientTextFrame(JSON.stringify({ type: "stdin", sessionId, data: "\r" })));
    // The client reads nothing: the kernel's socket buffers fill, then the relay's queue, until the runner
    // pauses for good. A PTY that stays paused and produces nothing for half a second is there.
    let still = 0;
    let produced = -1;
    await waitFor(
      () => {
        const stats = session().stats();
        still = stats.paused && stats.produced === produced ? still + 1 : 0;
        produced = stats.produced;
        return stats.produced > 0 && still >= 20;
      },
      "the session to stay paused",
      60_000,
      25,
    );
    let controls = 0;
    // The marker may come cut between two frames.
    let tail = "";
    const close = await readServerFrames(stalled, ({ opcode, payload }) => {
      if (opcode !== 0x1) return;
      const frame = JSON.parse(new TextDecoder().decode(payload));
      if (frame.type !== "stdout") return;
      for (let i = frame.data.indexOf("\x01"); i >= 0; i = frame.data.indexOf("\x01", i + 1)) controls++;
      tail = (tail + frame.data).slice(-32);
      return tail.includes("done-42");
    });
    assertEquals(close, null, "the relay never closed the client");
    assertEquals(controls, 4_000_000, "every byte, exactly once");
  } finally {
    stalled.close();
  }
});
