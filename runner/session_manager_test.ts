import { deepEqual as assertEquals, match as assertMatch, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { cdCommand, SessionManager } from "./session_manager.ts";
import { RunnerFileStore } from "./credentials.ts";
import { createLogger } from "./log.ts";
import { CollectingSink, testShellEnv, waitFor } from "./testing.ts";
import { processExists } from "./pty.ts";

interface Harness {
  manager: SessionManager;
  sink: CollectingSink;
  home: string;
  store: RunnerFileStore;
  /** Sessions the manager ended because the grace period passed without clients, in order. */
  graceEnded: string[];
  /** Every message logged, in order. */
  logged: string[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function harness(
  options: { flow?: { highWatermark: number; lowWatermark: number }; graceMs?: number } = {},
): Promise<Harness> {
  const home = await Deno.makeTempDir({ prefix: "coda-runner-test-" });
  const sink = new CollectingSink();
  const store = new RunnerFileStore(join(home, "config", "config.json"));
  const graceEnded: string[] = [];
  const logged: string[] = [];
  const log = createLogger({
    format: "json",
    write: (line) => {
      const record = JSON.parse(line);
      logged.push(record.msg);
      if (record.msg === "no client for the grace period; ending session") graceEnded.push(record.sessionId);
    },
  });
  const manager = new SessionManager({
    sink,
    log,
    env: testShellEnv(home),
    home,
    graceMs: options.graceMs ?? 60_000,
    replayBytes: 64 * 1024,
    store,
    flow: options.flow,
  });
  return {
    manager,
    sink,
    home,
    store,
    graceEnded,
    logged,
    async [Symbol.asyncDispose]() {
      await manager.shutdown();
      await Deno.remove(home, { recursive: true });
    },
  };
}

const SID = "session-0001";

function assertAttachOrder(sink: CollectingSink, clientId: string) {
  const mine = sink.frames.filter((f) => "clientId" in f && f.clientId === clientId);
  assertEquals(mine[0], { type: "meta", sessionId: SID, clientId, data: `coda:session:${SID}` });
  assertEquals(mine[1].type, "meta");
  assertMatch((mine[1] as { data: string }).data, /^coda:cwd:\//);
  assertEquals(mine.at(-1)?.type, "attached");
}

Deno.test("echo round trip, announced session and directory", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", cols: 100, rows: 30 });
  assertAttachOrder(h.sink, "c1");
  assertEquals(h.sink.metas(SID).slice(0, 2), [`coda:session:${SID}`, `coda:cwd:${h.home}`]);
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo $((40 + 2))-ok\r" });
  await waitFor(() => h.sink.output(SID).includes("42-ok"), "echo output");
});

Deno.test("resize is seen by stty size", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", cols: 100, rows: 30 });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "stty size\r" });
  await waitFor(() => h.sink.output(SID).includes("30 100"), "initial size");
  await h.manager.handle({ type: "resize", sessionId: SID, cols: 132, rows: 43 });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "stty size\r" });
  await waitFor(() => h.sink.output(SID).includes("43 132"), "new size");
});

Deno.test("shell exit sends the exit code and end", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "exit 7\r" });
  await waitFor(() => h.sink.frames.some((f) => f.type === "end"), "end");
  const end = h.sink.frames.findIndex((f) => f.type === "end");
  assertEquals(h.sink.frames[end], { type: "end", sessionId: SID, exitCode: 7 });
  assertEquals(h.sink.frames[end - 1], { type: "meta", sessionId: SID, data: "coda:exit:7" });
  assertEquals(h.manager.get(SID), undefined);
});

Deno.test("kill ends the session for everyone", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "kill", sessionId: SID });
  await waitFor(() => h.sink.frames.some((f) => f.type === "end"), "end");
  assert(h.sink.metas(SID).some((m) => m.startsWith("coda:exit:")));
});

Deno.test("a second client gets the replay, then both get live output", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo first-$((1 + 1))\r" });
  await waitFor(() => h.sink.output(SID).includes("first-2"), "first output");
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2" });
  assertAttachOrder(h.sink, "c2");
  assert(h.sink.output(SID, "c2").includes("first-2"), "replay holds earlier output");
  const attached = h.sink.frames.find((f) => f.type === "attached" && f.clientId === "c2");
  assertEquals((attached as { offset: number }).offset, h.manager.get(SID)!.stats().produced);
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo second-$((2 + 1))\r" });
  await waitFor(() => h.sink.output(SID).includes("second-3"), "live output");
});

Deno.test("resume by offset replays exactly the missing bytes", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  // `read` then waits for input without printing a prompt: once the output ends with the echoed line, the
  // shell writes nothing more.
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo é-$((3 * 3)); read -r\r" });
  await waitFor(() => h.sink.output(SID).endsWith("é-9\r\n"), "the output, then silence");
  const all = new TextEncoder().encode(h.sink.output(SID, "c1") + h.sink.output(SID).slice(0));
  const produced = h.manager.get(SID)!.stats().produced;
  const live = h.sink.frames.filter((f) => f.type === "stdout" && !f.clientId);
  assert(live.length > 0);
  const middle = live[Math.floor(live.length / 2)] as { offset: number };
  h.manager.get(SID)!.detach("c1");
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c3", offset: middle.offset });
  const replay = h.sink.frames.filter((f) => f.type === "stdout" && f.clientId === "c3") as {
    offset: number;
    data: string;
  }[];
  assertEquals(replay[0].offset, middle.offset);
  const replayed = replay.map((f) => f.data).join("");
  assertEquals(middle.offset + new TextEncoder().encode(replayed).length, produced);
  assert(all.length >= produced);
});

Deno.test("an offset past the end of a running session's stream gets coda:reset", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2", offset: 5_000_000 });
  const toC2 = h.sink.frames.filter((f) => f.type === "meta" && f.clientId === "c2");
  assert(toC2.some((f) => f.type === "meta" && f.data === "coda:reset"));
});

Deno.test("resuming a session this runner process never ran ends it as runner-restarted; no new shell", async () => {
  await using h = await harness();
  // What a browser sends after the runner restarted: its session id, and the bytes it already has.
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", offset: 5000 });
  assertEquals(h.sink.frames, [
    { type: "meta", sessionId: SID, clientId: "c1", data: "coda:ended:runner-restarted" },
    { type: "end", sessionId: SID, exitCode: null },
  ]);
  assertEquals(h.manager.get(SID), undefined);
  // stdin queued behind that attach reaches no shell.
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo should-not-run\r" });
  assertEquals(h.manager.list(), []);

  // A first attach (offset 0, as a new tab sends) still starts a shell.
  await h.manager.handle({ type: "attach", sessionId: "session-0002", clientId: "c2", offset: 0 });
  assertEquals(h.sink.metas("session-0002")[0], "coda:session:session-0002");
  await h.manager.handle({ type: "stdin", sessionId: "session-0002", data: "echo fresh-$((6 * 7))\r" });
  await waitFor(() => h.sink.output("session-0002").includes("fresh-42"), "the new shell");
});

Deno.test("an evicted offset gets coda:gap", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({
    type: "stdin",
    sessionId: SID,
    data: "head -c 200000 /dev/zero | tr '\\0' x; echo; echo done-$((5 + 5))\r",
  });
  const session = h.manager.get(SID)!;
  await waitFor(() => {
    session.ack(session.stats().produced);
    return h.sink.output(SID).includes("done-10");
  }, "big output");
  const start = session.stats().produced - session.stats().heldBytes;
  assert(start > 0);
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2", offset: 0 });
  assert(h.sink.metas(SID).includes(`coda:gap:0-${start}`), h.sink.metas(SID).join(","));
});

Deno.test("pick-cwd: a bad path answers an error and changes nothing", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", ideaId: "idea-1" });
  await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: join(h.home, "missing") });
  assertEquals(
    h.sink.metas(SID).at(-1),
    `coda:error:pick-cwd: no such directory: ${join(h.home, "missing")}`,
  );
  await Deno.writeTextFile(join(h.home, "file.txt"), "x");
  await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: join(h.home, "file.txt") });
  assertMatch(h.sink.metas(SID).at(-1)!, /^coda:error:pick-cwd: not a directory/);
  await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: "relative/dir" });
  assertMatch(h.sink.metas(SID).at(-1)!, /^coda:error:pick-cwd: the path must be absolute/);
  assertEquals(h.manager.get(SID)!.cwd, h.home);
  assertEquals((await h.store.read()).cwds, {});
});

Deno.test("pick-cwd: a directory name holding Ctrl-U cannot run a command", async () => {
  await using h = await harness();
  const marker = join(h.home, "PWNED");
  const evil = join(h.home, "x\u0015touch PWNED; #");
  await Deno.mkdir(evil);
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", ideaId: "idea-1" });
  for (const path of [evil, join(h.home, "a\u007fb"), join(h.home, "a\u009bb"), join(h.home, "a\rb")]) {
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path });
    assertEquals(
      h.sink.metas(SID).at(-1),
      "coda:error:pick-cwd: the path holds a control character; refused",
    );
  }
  // The shell runs input in order: once this probe has answered, anything typed before it has run too.
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo probe-$((20 + 1))\r" });
  await waitFor(() => h.sink.output(SID).includes("probe-21"), "the probe to answer");
  await rejects(Deno.stat(marker), Deno.errors.NotFound);
  assertEquals(h.manager.get(SID)!.cwd, h.home);
  assertEquals((await h.store.read()).cwds, {});
});

Deno.test("pick-cwd: a directory is remembered for the idea and the shell moves there", async () => {
  await using h = await harness();
  const dir = join(h.home, "it's a dir");
  await Deno.mkdir(dir);
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", ideaId: "idea-1" });
  await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
  assertEquals(h.sink.metas(SID).at(-1), `coda:cwd:${dir}`);
  assertEquals((await h.store.read()).cwds, { "idea-1": dir });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: 'echo "at:$(pwd)"\r' });
  await waitFor(() => h.sink.output(SID).includes(`at:${dir}`), "pwd in the new directory");
  const other = "session-0002";
  await h.manager.handle({ type: "attach", sessionId: other, clientId: "c2", ideaId: "idea-1" });
  assert(h.sink.metas(other).includes(`coda:cwd:${dir}`));
});

Deno.test("flow control keeps memory bounded under yes, and Ctrl-C still stops it", async () => {
  await using h = await harness({ flow: { highWatermark: 64 * 1024, lowWatermark: 16 * 1024 } });
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "yes\r" });
  const session = h.manager.get(SID)!;
  await waitFor(() => session.stats().paused, "the PTY to pause without acks");
  const pausedAt = session.stats().produced;
  // A second `yes` without clients is never paused: while it produces 1 MB, the first would have outgrown
  // the bound below many times over had it not been paused.
  const control = "session-0002";
  await h.manager.handle({ type: "attach", sessionId: control, clientId: "c2" });
  await h.manager.handle({ type: "stdin", sessionId: control, data: "yes | head -c 1048576\r" });
  h.manager.get(control)!.detach("c2");
  await waitFor(() => h.manager.get(control)!.stats().produced > 1024 * 1024, "1 MB from the unpaused yes");
  const stillPaused = session.stats();
  assert(stillPaused.paused);
  // node-pty may deliver what it had already read; no more than a few reads beyond the watermark.
  assert(
    stillPaused.produced - pausedAt < 256 * 1024,
    `grew ${stillPaused.produced - pausedAt} bytes while paused`,
  );
  assert(stillPaused.heldBytes <= 64 * 1024 + 128 * 1024);
  // Acknowledge repeatedly: output flows again through several watermarks, the buffer stays bounded.
  await waitFor(() => {
    session.ack(session.stats().produced);
    assert(session.stats().heldBytes <= 64 * 1024 + 128 * 1024);
    return session.stats().produced > stillPaused.produced + 4 * 64 * 1024;
  }, "output to resume after acks");
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "\x03" });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "echo stopped-$((6 * 7))\r" });
  await waitFor(() => {
    session.ack(session.stats().produced);
    return h.sink.output(SID).includes("stopped-42");
  }, "Ctrl-C to stop yes");
});

Deno.test("without clients the PTY runs freely and the ring buffer bounds memory", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({
    type: "stdin",
    sessionId: SID,
    data: "yes | head -c 3000000; echo; echo fin-$((2 * 4))\r",
  });
  h.manager.get(SID)!.detach("c1");
  const session = h.manager.get(SID)!;
  await waitFor(() => session.stats().produced > 3_000_000, "3 MB of output");
  assertEquals(session.stats().paused, false);
  assert(session.stats().heldBytes <= 64 * 1024 + 128 * 1024);
});

Deno.test("stdin right behind the attach that starts the session is not lost", async () => {
  await using h = await harness();
  const attach = h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1", ideaId: "idea-1" });
  const stdin = h.manager.handle({ type: "stdin", sessionId: SID, data: "echo early-$((8 + 8))\r" });
  await Promise.all([attach, stdin]);
  await waitFor(() => h.sink.output(SID).includes("early-16"), "the early keystrokes");
});

Deno.test("a session without clients ends after the grace period, but not while the link is down", async () => {
  await using h = await harness({ graceMs: 300 });
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  h.manager.linkDown();
  // A session of a second manager, whose link is up, left without clients after this link went down: its
  // grace period (same length) ends later than this one's would have, so once it has, this one was spared.
  await using up = await harness({ graceMs: 300 });
  await up.manager.handle({ type: "attach", sessionId: SID, clientId: "c9" });
  await up.manager.handle({ type: "detach", sessionId: SID, clientId: "c9" });
  await waitFor(() => up.graceEnded.includes(SID), "the grace period of a session on a link that is up");
  assert(h.manager.get(SID), "kept while the link is down");
  h.manager.linkUp();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2" });
  // A session left without clients after linkUp started this one's grace period: its grace period ends
  // later than this one's would have (same length), so once it has, this one was spared.
  const control = "session-0002";
  await h.manager.handle({ type: "attach", sessionId: control, clientId: "c3" });
  await h.manager.handle({ type: "detach", sessionId: control, clientId: "c3" });
  await waitFor(() => h.graceEnded.includes(control), "the grace period of a session without clients");
  assertEquals(h.graceEnded, [control], "kept while a client is attached");
  assert(h.manager.get(SID), "kept while a client is attached");
  await h.manager.handle({ type: "detach", sessionId: SID, clientId: "c2" });
  await waitFor(() => h.manager.get(SID) === undefined, "the grace period to end the session");
  assert(h.sink.frames.some((f) => f.type === "end"));
});

/**
 * Starts session SID for client c1 with a shell that waits for the file `go`, prints `after-42` and exits
 * 3, then takes the link down and lets it exit: with the link still down, or (`linkBackFirst`) back before
 * the relay has attached the waiting client again. Returns the offset that client stopped at.
 */
async function exitWhileClientsAway(h: Harness, linkBackFirst = false): Promise<{ offset: number }> {
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({
    type: "stdin",
    sessionId: SID,
    data: "while [ ! -e go ]; do sleep 0.02; done; echo after-$((6 * 7)); exit 3\r",
  });
  await waitFor(() => h.sink.output(SID).includes("exit 3"), "the command's echo");
  const session = h.manager.get(SID)!;
  h.manager.linkDown();
  const offset = h.sink.chunks.reduce((sum, chunk) => sum + chunk.data.length, 0);
  if (linkBackFirst) h.manager.linkUp();
  await Deno.writeTextFile(join(h.home, "go"), "");
  await session.exited;
  assert(!h.sink.frames.some((f) => f.type === "end"), "nobody attached to tell");
  assert(!h.sink.metas(SID).includes("coda:exit:3"));
  return { offset };
}

/** Resumes SID as `clientId` from `offset` and checks it gets the output it missed, then the exit. */
async function assertResumeIsTold(h: Harness, clientId: string, offset: number): Promise<void> {
  const before = h.sink.frames.length;
  await h.manager.handle({ type: "attach", sessionId: SID, clientId, offset });
  const told = h.sink.frames.slice(before);
  assertEquals(told.find((f) => f.type === "stdout")?.offset, offset, "from where the client stopped");
  assert(h.sink.output(SID, clientId).includes("after-42"), h.sink.output(SID, clientId));
  assertEquals(told.slice(-3).map((f) => f.type === "meta" ? f.data : f.type), [
    "attached",
    "coda:exit:3",
    "end",
  ]);
  assertEquals(told.at(-1), { type: "end", sessionId: SID, exitCode: 3 });
  assert(!told.some((f) => f.type === "meta" && f.data.startsWith("coda:ended:")), "not runner-restarted");
  assertEquals(h.manager.list(), [], "no new shell");
}

Deno.test("a shell that exits while the link is down: the first client to resume gets what it missed, then the exit", async () => {
  await using h = await harness();
  const { offset } = await exitWhileClientsAway(h);
  assertEquals(h.manager.get(SID), undefined, "not running");
  h.manager.linkUp();
  await assertResumeIsTold(h, "c2", offset);
});

Deno.test("a shell that exits after the link is back, before its clients attach again, is told to the first that does", async () => {
  await using h = await harness();
  // The relay has not sent the waiting client's attach yet when the shell exits.
  const { offset } = await exitWhileClientsAway(h, true);
  await assertResumeIsTold(h, "c1", offset);
});

Deno.test("an exit nobody came back to hear is let go of after the session's grace; a resume then meets runner-restarted", async () => {
  await using h = await harness({ graceMs: 200 });
  const { offset } = await exitWhileClientsAway(h);
  const dropped = "no client came back to an ended session; letting it go";
  await waitFor(() => h.logged.includes(dropped), "the untold end let go of");
  h.manager.linkUp();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2", offset });
  assert(h.sink.metas(SID).includes("coda:ended:runner-restarted"), h.sink.metas(SID).join());
  assert(!h.sink.metas(SID).includes("coda:exit:3"));
});

Deno.test("a shell that ignores SIGHUP is killed anyway", async () => {
  await using h = await harness();
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  await h.manager.handle({ type: "stdin", sessionId: SID, data: "trap '' HUP; echo trapped-$((3 + 4))\r" });
  await waitFor(() => h.sink.output(SID).includes("trapped-7"), "the trap");
  await h.manager.get(SID)!.kill(300);
  await waitFor(() => h.sink.frames.some((f) => f.type === "end"), "end after SIGKILL");
  assert(h.sink.metas(SID).includes("coda:exit:signal"), h.sink.metas(SID).join(","));
});

Deno.test("cd commands are quoted for the shell they are typed into", () => {
  assertEquals(cdCommand("/a b/it's", "linux"), ` cd -- '/a b/it'\\''s'\r`);
  assertEquals(cdCommand("C:\\Users\\a b", "windows"), `cd /d "C:\\Users\\a b"\r`);
});

Deno.test("output a program leaves in the PTY as it exits arrives, however long its client waits to ack it", async () => {
  await using h = await harness({ flow: { highWatermark: 64 * 1024, lowWatermark: 16 * 1024 } });
  await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
  const session = h.manager.get(SID)!;
  const { pid } = session;
  const count = 72_000;
  // More than the window (so the PTY pauses) and, beyond it, less than the kernel's PTY buffers take, so
  // the program finishes writing and exits while nothing reads.
  await h.manager.handle({
    type: "stdin",
    sessionId: SID,
    // The output starts with QZ, which the command's echo does not hold.
    data: `exec sh -c 'printf "\\121\\132"; head -c ${count} /dev/zero | tr "\\0" x; printf END'\r`,
  });
  await waitFor(() => session.stats().paused, "the PTY to pause without acks");
  await waitFor(() => !processExists(pid), "the program to exit while the PTY is paused");
  // node-pty drops what is left unread 200 ms after the exit; a client that acks a little later is usual.
  await new Promise((resolve) => setTimeout(resolve, 400));
  await waitFor(() => {
    session.ack(session.stats().produced);
    return h.sink.frames.some((f) => f.type === "end");
  }, "the end, once acked");
  const output = h.sink.output(SID);
  const tail = output.slice(output.indexOf("QZ") + 2);
  assertEquals([tail.length, tail.slice(-10)], [count + 3, "xxxxxxxEND"]);
});
