import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { RelayBackend, SessionReport } from "./backend.ts";
import { CloseCode, CloseReason, encode, MetaLine } from "./protocol.ts";
import {
  clientToken,
  connectClient,
  rawWebSocket,
  readToClose,
  relayTest,
  uniqueId,
  waitFor,
} from "./testing.ts";
import type { RelayLimits } from "./limits.ts";

const FAST: Partial<RelayLimits> = { runnerWaitMs: 1500 };

relayTest("presence is refreshed at every heartbeat interval while the runner is connected", async (h) => {
  const runner = await h.runner("runner-pres01", "user-1");
  await runner.welcome();
  const reports = h.backend.presenceReports;
  await waitFor(() => h.backend.presenceReports >= reports + 3, "three presence refreshes");
  assertEquals(h.backend.presence.get("runner-pres01"), true);
}, { limits: { pingIntervalMs: 100 } });

relayTest(
  "the runner hears which clients read binary frames; spec-only ones' attach is as the spec has it",
  async (h) => {
    const runner = await h.runner("runner-bin001", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    assertEquals((await runner.next((m) => m.type === "attach")).binary, true);
    await connectClient(h, { userId: "user-1", sessionId });
    await waitFor(() => runner.received.filter((m) => m.type === "attach").length === 2, "the second attach");
    assert(!("binary" in runner.received.filter((m) => m.type === "attach")[1]));
  },
);

relayTest("client and runner exchange the spec's messages", async (h) => {
  const runner = await h.runner("runner-main01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId }, { cols: 100, rows: 30 });
  const attach = await runner.next((m) => m.type === "attach");
  assertEquals({ ...attach, clientId: "x" }, {
    type: "attach",
    sessionId,
    clientId: "x",
    cols: 100,
    rows: 30,
  });
  await client.meta(MetaLine.session(sessionId));
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId, data: "ls\r" });
  client.send({ type: "resize", sessionId, cols: 120, rows: 40 });
  client.send({ type: "record", sessionId, on: true });
  client.send({ type: "pick-cwd", sessionId, path: "/tmp" });
  await runner.next((m) => m.type === "pick-cwd");
  assertEquals(runner.stdin(sessionId), "ls\r");
  assert(runner.received.some((m) => m.type === "resize" && m.cols === 120 && m.rows === 40));
  assert(runner.received.some((m) => m.type === "record" && m.on === true));
  runner.write(sessionId, "héllo\r\n");
  await client.waitOutput("héllo");
  const stdout = client.received.find((m) => m.type === "stdout")!;
  assertEquals(stdout, { type: "stdout", sessionId, data: "héllo\r\n", offset: 0 });
  // Without ack=1 the relay acknowledges for the client once the bytes left.
  await runner.next((m) => m.type === "ack" && m.offset === 8, "relay ack");
  runner.exit(sessionId, 0);
  await client.meta(MetaLine.exit(0));
  assertEquals(await client.closed, { code: CloseCode.NORMAL, reason: "session ended" });
  const metrics = await h.metrics();
  assert(metrics.includes('relay_frames_total{direction="client_to_runner"} 4'), metrics);
  assert(metrics.includes("relay_runners_connected 1"), metrics);
});

relayTest("a client goes to its token's runner, else to its user's earliest runner", async (h) => {
  const older = await h.runner("runner-older1", "user-1");
  await older.welcome();
  const newer = await h.runner("runner-newer1", "user-1");
  await newer.welcome();
  const other = await h.runner("runner-other1", "user-2");
  await other.welcome();
  const s1 = uniqueId("session");
  await connectClient(h, { userId: "user-1", sessionId: s1 });
  await older.next((m) => m.type === "attach" && m.sessionId === s1);
  const s2 = uniqueId("session");
  await connectClient(h, { userId: "user-1", sessionId: s2, runnerId: "runner-newer1" });
  await newer.next((m) => m.type === "attach" && m.sessionId === s2);
  const s3 = uniqueId("session");
  await connectClient(h, { userId: "user-2", sessionId: s3 });
  await other.next((m) => m.type === "attach" && m.sessionId === s3);
  assert(!older.received.some((m) => m.sessionId === s2 || m.sessionId === s3));
  assert(!newer.received.some((m) => m.sessionId === s1 || m.sessionId === s3));
  assert(!other.received.some((m) => m.sessionId === s1 || m.sessionId === s2));
});

relayTest("a client never reaches another user's runner", async (h) => {
  const victim = await h.runner("runner-victim", "user-1");
  await victim.welcome();
  const sessionId = uniqueId("session");
  const intruder = await connectClient(h, { userId: "user-2", sessionId, runnerId: "runner-victim" });
  await intruder.meta(MetaLine.relay("waiting"));
  intruder.send({ type: "stdin", sessionId, data: "rm -rf ~\r" });
  const intruder2 = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
  await intruder2.meta(MetaLine.relay("waiting"));
  assertEquals(await intruder.closed, { code: CloseCode.NO_RUNNER, reason: "no runner online" });
  assertEquals((await intruder2.closed).code, CloseCode.NO_RUNNER);
  assert(!victim.received.some((m) => m.type !== "welcome"), JSON.stringify(victim.received));
}, { limits: FAST });

relayTest("a client waits for a runner, then attaches when one connects", async (h) => {
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.relay("waiting"));
  client.send({ type: "stdin", sessionId, data: "early\r" });
  const runner = await h.runner("runner-late01", "user-1");
  await runner.next((m) => m.type === "attach");
  await client.meta(MetaLine.relay("online"));
  await waitFor(() => runner.stdin(sessionId) === "early\r", "early stdin forwarded after attach");
  const kinds = runner.received.map((m) => m.type);
  assert(kinds.indexOf("attach") < kinds.indexOf("stdin"), kinds.join());
});

relayTest("resume by offset: a client that reattaches gets only what follows", async (h) => {
  const runner = await h.runner("runner-resum1", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const first = await connectClient(h, { userId: "user-1", sessionId });
  await first.meta(MetaLine.cwd("/home/test"));
  runner.write(sessionId, "one\n");
  runner.write(sessionId, "twö\n");
  await first.waitOutput("twö\n");
  await first.close();
  await runner.next((m) => m.type === "detach");
  runner.write(sessionId, "three\n");
  const second = await connectClient(h, { userId: "user-1", sessionId }, { offset: 4 });
  assertEquals((await runner.next((m) => m.type === "attach" && m.offset === 4)).sessionId, sessionId);
  await second.waitOutput("three\n");
  runner.write(sessionId, "four\n");
  await second.waitOutput("four\n");
  assertEquals(second.output(), "twö\nthree\nfour\n");
  const offsets = second.received.filter((m) => m.type === "stdout").map((m) => m.offset);
  assertEquals(offsets, [4, 9, 15]);
});

relayTest("a reset stream is delivered from 0 even though the client asked for a later offset", async (h) => {
  const runner = await h.runner("runner-reset1", "user-1");
  runner.autoAttach = false;
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId }, { offset: 100 });
  const attach = await runner.next((m) => m.type === "attach");
  assertEquals(attach.offset, 100);
  const clientId = attach.clientId;
  runner.send({ type: "meta", sessionId, clientId, data: MetaLine.reset() });
  runner.send({ type: "stdout", sessionId, clientId, data: "fresh\n", offset: 0 });
  runner.send({ type: "attached", sessionId, clientId, offset: 6 });
  runner.send({ type: "stdout", sessionId, data: "live\n", offset: 6 });
  await client.waitOutput("live\n");
  assertEquals(client.output(), "fresh\nlive\n");
  await client.meta(MetaLine.reset());
});

relayTest("two clients on one session both see output and both type", async (h) => {
  const runner = await h.runner("runner-twoc01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const tab = await connectClient(h, { userId: "user-1", sessionId });
  await tab.meta(MetaLine.cwd("/home/test"));
  runner.write(sessionId, "before\n");
  await tab.waitOutput("before\n");
  const phone = await connectClient(h, { userId: "user-1", sessionId }, { ack: true });
  await phone.waitOutput("before\n");
  tab.send({ type: "stdin", sessionId, data: "a" });
  phone.send({ type: "stdin", sessionId, data: "b" });
  phone.send({ type: "ack", sessionId, offset: 7 });
  await waitFor(() => runner.stdin(sessionId).length === 2, "both keystrokes");
  await runner.next((m) => m.type === "ack" && m.offset === 7);
  runner.write(sessionId, "after\n");
  await tab.waitOutput("after\n");
  await phone.waitOutput("after\n");
  assertEquals(tab.output(), "before\nafter\n");
  assertEquals(phone.output(), "before\nafter\n");
  // Each client's replay went only to it.
  assertEquals(tab.received.filter((m) => m.data === MetaLine.session(sessionId)).length, 1);
});

relayTest(
  "a slow client is closed 4413 with bounded relay memory while its peer keeps flowing",
  async (h) => {
    const runner = await h.runner("runner-slow01", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const fast = await connectClient(h, { userId: "user-1", sessionId }, { ack: true });
    await fast.meta(MetaLine.cwd("/home/test"));
    const slowToken = await clientToken({ userId: "user-1", sessionId });
    const slow = await rawWebSocket(`${h.relay.url}/client?token=${slowToken}`);
    await waitFor(
      () => runner.received.filter((m) => m.type === "attach").length === 2,
      "slow client attached",
    );
    // The scripted runner paces itself on the fast client, as a real runner does through acks.
    const chunk = "x".repeat(64 * 1024 - 1) + "\n";
    let written = 0;
    while (!h.relay.logs.some((l) => l.event === "slow_consumer")) {
      runner.write(sessionId, chunk);
      written++;
      await waitFor(() => fast.output().length >= written * chunk.length, "fast client keeps up");
      assert(written < 2000, "the slow client was never closed");
    }
    const record = h.relay.logs.find((l) => l.event === "slow_consumer")!;
    assert((record.buffered as number) <= 256 * 1024, `relay held ${record.buffered} bytes`);
    runner.write(sessionId, "tail\n");
    await fast.waitOutput("tail\n");
    assertEquals(fast.output().length, written * chunk.length + 5);
    assert((await h.metrics()).includes('relay_connections_closed_total{code="4413"} 1'));
    assert(!fast.isClosed);
    slow.close();
  },
  { limits: { maxClientBufferedBytes: 256 * 1024 } },
);

relayTest(
  "a slow client that reads late still gets its 4413 close, after everything queued for it",
  async (h) => {
    const runner = await h.runner("runner-slow02", "user-1", "header", true);
    await runner.welcome();
    const sessionId = uniqueId("session");
    const fast = await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    await fast.meta(MetaLine.cwd("/home/test"));
    const slow = await rawWebSocket(
      `${h.relay.url}/client?token=${await clientToken({ userId: "user-1", sessionId })}`,
    );
    await waitFor(
      () => runner.received.filter((m) => m.type === "attach").length === 2,
      "slow client attached",
    );
    const chunk = new Uint8Array(64 * 1024).fill(0x78);
    let written = 0;
    while (!h.relay.logs.some((l) => l.event === "slow_consumer")) {
      runner.write(sessionId, chunk);
      written += chunk.length;
      // Paced on the fast client, as a real runner is through acks.
      await waitFor(() => fast.outputBytes().byteLength >= written, "the fast client keeps up");
      assert(written < 64 * 1024 * 1024, "the slow client was never closed");
    }
    // Reading at ~6 MB/s takes far longer than the close grace: the close must wait for the queue, not race it.
    const read = await readToClose(slow, 64 * 1024, 10);
    slow.close();
    assertEquals(read.close, { code: CloseCode.SLOW_CONSUMER, reason: CloseReason.SLOW_CONSUMER });
    assert(read.dataBytes > 1024 * 1024, `only ${read.dataBytes} bytes came before the close`);
  },
  { limits: { maxClientBufferedBytes: 4 * 1024 * 1024, closeGraceMs: 300 } },
);

relayTest("runner link drop: clients wait, then continue without loss or duplicates", async (h) => {
  const first = await h.runner("runner-drop01", "user-1");
  await first.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  first.write(sessionId, "before\n");
  await client.waitOutput("before\n");
  await first.close();
  await client.meta(MetaLine.relay("offline"));
  const second = await h.runner("runner-drop01", "user-1");
  second.adopt(first);
  await second.welcome();
  second.write(sessionId, "while away\n");
  const attach = await second.next((m) => m.type === "attach");
  assertEquals(attach.offset, 7);
  await client.meta(MetaLine.relay("online"));
  await client.waitOutput("while away\n");
  second.write(sessionId, "after\n");
  await client.waitOutput("after\n");
  assertEquals(client.output(), "before\nwhile away\nafter\n");
}, { limits: { runnerWaitMs: 10_000 } });

relayTest("a runner that does not come back: its clients are closed 4404", async (h) => {
  const runner = await h.runner("runner-gone01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  await runner.close();
  await client.meta(MetaLine.relay("offline"));
  assertEquals(await client.closed, { code: CloseCode.NO_RUNNER, reason: "runner did not come back" });
}, { limits: FAST });

relayTest("a second connection of the same runner replaces the first (4409)", async (h) => {
  const first = await h.runner("runner-repl01", "user-1");
  await first.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  first.write(sessionId, "one\n");
  await client.waitOutput("one\n");
  const second = await h.runner("runner-repl01", "user-1");
  second.adopt(first);
  assertEquals((await first.closed).code, CloseCode.REPLACED);
  await second.next((m) => m.type === "attach" && m.offset === 4);
  second.write(sessionId, "two\n");
  await client.waitOutput("two\n");
  assertEquals(client.output(), "one\ntwo\n");
  assert(!client.received.some((m) => m.data === MetaLine.relay("offline")));
});

relayTest(
  "the relay reports a session to the app: who ran it, its folder when it changed, its end, in order",
  async (h) => {
    const reports: SessionReport[] = [];
    let slow = true;
    // The first write is slow: the end sent right after must still arrive after it.
    (h.backend as RelayBackend).reportSession = async (report) => {
      if (slow) {
        slow = false;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      reports.push(report);
    };
    const runner = await h.runner("runner-report1", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const first = await connectClient(h, { userId: "user-1", sessionId });
    await first.meta(MetaLine.cwd("/home/test"));
    const second = await connectClient(h, { userId: "user-1", sessionId });
    await second.meta(MetaLine.cwd("/home/test"));
    runner.send(encode({ type: "meta", sessionId, data: MetaLine.cwd("/srv") }));
    // A session no client of this runner is on: its folder is not the app's business.
    runner.send(encode({ type: "meta", sessionId: uniqueId("session"), data: MetaLine.cwd("/elsewhere") }));
    runner.exit(sessionId, 0);
    await first.closed;
    await waitFor(() => reports.some((r) => r.ended), "the end to be reported");
    // In the order the runner sent them: each attach's `coda:cwd` comes before its `attached`.
    assertEquals(reports, [
      { sessionId, userId: "user-1", cwd: "/home/test" },
      { sessionId, userId: "user-1", runnerId: "runner-report1" },
      { sessionId, userId: "user-1", runnerId: "runner-report1" },
      { sessionId, userId: "user-1", cwd: "/srv" },
      { sessionId, userId: "user-1", ended: true },
    ]);
  },
);
