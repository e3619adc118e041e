/**
 * A session's output path on its own, driven by a scripted PTY: when reads
 * arrive and how they are cut is what is under test, and a real PTY decides
 * both by itself. (The real PTY path is covered in session_manager_test.ts
 * and relay_test.ts.)
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Session, type SessionOptions } from "./session.ts";
import type { PtyProcess } from "./pty.ts";
import { CollectingSink, silentLogger, waitFor } from "./testing.ts";

/** A PTY whose reads the test writes, and which records pause and resume. */
class ScriptedPty implements PtyProcess {
  readonly pid = 0;
  paused = false;
  #onData: ((data: Uint8Array | string) => void) | undefined;
  #onExit: ((exit: { exitCode: number }) => void) | undefined;
  onData(listener: (data: Uint8Array | string) => void): void {
    this.#onData = listener;
  }
  onExit(listener: (exit: { exitCode: number }) => void): void {
    this.#onExit = listener;
  }
  /** One read of these bytes. */
  read(...bytes: number[]): void {
    this.readBytes(new Uint8Array(bytes));
  }
  readBytes(bytes: Uint8Array): void {
    this.#onData!(bytes);
  }
  exit(): void {
    this.#onExit!({ exitCode: 0 });
  }
  write(): void {}
  resize(): void {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  kill(): void {}
}

function session(
  pty: ScriptedPty,
  sink: CollectingSink,
  more: Pick<SessionOptions, "flow" | "replayBytes"> = {},
): Session {
  return new Session({
    ...more,
    sessionId: "session-0001",
    pty,
    cwd: "/",
    cols: 80,
    rows: 24,
    sink,
    log: silentLogger,
    graceMs: 60_000,
    onEnd() {},
  });
}

const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("reads of one turn go out as one frame; a character cut between reads waits for its other bytes", async () => {
  const pty = new ScriptedPty();
  const sink = new CollectingSink();
  const s = session(pty, sink);
  s.attach("c1", undefined, true);
  pty.read(0x61);
  pty.read(0x62, 0x63);
  pty.read(0x64, 0xc3);
  await nextTurn();
  pty.read(0xa9, 0xf0, 0x9f);
  await nextTurn();
  pty.read(0x98, 0x80);
  await nextTurn();
  assertEquals(
    sink.chunks.map((chunk) => [chunk.offset, [...chunk.data], chunk.replay]),
    [[0, [0x61, 0x62, 0x63, 0x64], false], [4, [0xc3, 0xa9], false], [6, [0xf0, 0x9f, 0x98, 0x80], false]],
  );
  assertEquals(sink.output("session-0001"), "abcdé😀");

  // A lone start of a character, with nothing after it, is shown anyway once the wait is over.
  pty.read(0x7a, 0xe2);
  await waitFor(() => sink.chunks.length === 5, "the held byte");
  assertEquals(sink.chunks.slice(3).map((chunk) => [chunk.offset, [...chunk.data]]), [[10, [0x7a]], [11, [
    0xe2,
  ]]]);

  // A client attaching later gets it all as replay, from the byte it asks for.
  s.attach("c2", 4, false);
  const replay = sink.chunks.filter((chunk) => chunk.clientId === "c2");
  assertEquals(replay.map((chunk) => [chunk.offset, chunk.replay]), [[4, true]]);
  assertEquals([...replay[0].data], [0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0x7a, 0xe2]);
  pty.exit();
  await s.exited;
});

Deno.test("a link that drops with a client attached pauses the PTY until a client is back", async () => {
  const pty = new ScriptedPty();
  const sink = new CollectingSink();
  const s = session(pty, sink);
  // Without clients the link going down changes nothing: the PTY runs into the ring.
  s.linkDown();
  assert(!pty.paused);
  s.linkUp();
  s.attach("c1", undefined, true);
  s.linkDown();
  assert(pty.paused, "paused while the relay keeps the client waiting");
  s.linkUp();
  assert(pty.paused, "still paused: the client has not come back yet");
  s.attach("c1-again", 0, false);
  assert(!pty.paused, "the client is back");
  pty.exit();
  await s.exited;
});

Deno.test("the window may grow to binary clients' ceiling while only they are attached, within the ring", async () => {
  const flow = {
    highWatermark: 16 * 1024,
    lowWatermark: 4 * 1024,
    maxWindow: 64 * 1024,
    maxBinaryWindow: 256 * 1024,
    // Any ack rate asks for more than either ceiling.
    windowMs: 1_000_000,
  };
  const windowAfterAcks = async (s: Session, pty: ScriptedPty) => {
    pty.readBytes(new Uint8Array(32 * 1024).fill(0x61));
    await nextTurn();
    // The ack rate is measured over 10 ms at least.
    await new Promise((resolve) => setTimeout(resolve, 15));
    s.ack(s.stats().produced);
    return s.stats().window;
  };
  const pty = new ScriptedPty();
  const s = session(pty, new CollectingSink(), { flow, replayBytes: 4 * 1024 * 1024 });
  s.attach("binary-1", undefined, true, true);
  assertEquals(await windowAfterAcks(s, pty), 256 * 1024);
  s.attach("json-1", undefined, false);
  assertEquals(await windowAfterAcks(s, pty), 64 * 1024, "a spec-only client's output may grow in JSON");
  s.detach("json-1");
  assertEquals(await windowAfterAcks(s, pty), 256 * 1024);
  pty.exit();
  await s.exited;

  // What is unacknowledged stays replayable: a ring of 256 KiB holds the window and a batch or two past it.
  const small = new ScriptedPty();
  const ringBound = session(small, new CollectingSink(), { flow, replayBytes: 256 * 1024 });
  ringBound.attach("binary-1", undefined, true, true);
  assertEquals(await windowAfterAcks(ringBound, small), 128 * 1024);
  small.exit();
  await ringBound.exited;
});
