/**
 * A session's output path on its own, driven by a scripted PTY: when reads
 * arrive and how they are cut is what is under test, and a real PTY decides
 * both by itself. (The real PTY path is covered in session_manager_test.ts
 * and relay_test.ts.)
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Session } from "./session.ts";
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
    this.#onData!(new Uint8Array(bytes));
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

function session(pty: ScriptedPty, sink: CollectingSink): Session {
  return new Session({
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
