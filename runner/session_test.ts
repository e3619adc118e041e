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
import { concatBytes } from "@coda/relay/bytes";

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

Deno.test("a spec-only client's output counts as the JSON it becomes: control bytes pause the PTY sooner", async () => {
  const flow = {
    highWatermark: 16 * 1024,
    lowWatermark: 4 * 1024,
    maxWindow: 256 * 1024,
    windowMs: 1_000_000,
  };
  const pty = new ScriptedPty();
  const s = session(pty, new CollectingSink(), { flow, replayBytes: 4 * 1024 * 1024 });
  // The window grows with the ack rate (measured over 10 ms at least), up to its ceiling.
  s.attach("json-1", undefined, true);
  pty.readBytes(new Uint8Array(32 * 1024).fill(0x61));
  await nextTurn();
  await new Promise((resolve) => setTimeout(resolve, 15));
  s.ack(s.stats().produced);
  assertEquals(s.stats().window, 256 * 1024);

  // 48 KiB of text in flight: as JSON about as large, within the window.
  pty.readBytes(new Uint8Array(48 * 1024).fill(0x61));
  await nextTurn();
  assert(!pty.paused);
  s.ack(s.stats().produced);
  // 48 KiB of control bytes: six times that as JSON, past the window though the bytes are not.
  pty.readBytes(new Uint8Array(48 * 1024).fill(0x01));
  await nextTurn();
  assert(pty.paused, "paused on the JSON in flight");
  s.ack(s.stats().produced - 16 * 1024);
  assert(pty.paused, "a quarter of the window's JSON or more is still in flight");
  s.ack(s.stats().produced);
  assert(!pty.paused, "resumed once acknowledged");

  // A binary client's bytes stay bytes: the same output keeps it running.
  s.detach("json-1");
  s.attach("binary-1", undefined, false, true);
  pty.readBytes(new Uint8Array(48 * 1024).fill(0x01));
  await nextTurn();
  assert(!pty.paused, "binary frames are not expanded");
  s.ack(s.stats().produced);
  // A spec-only client joining counts from the next chunk on.
  s.attach("json-2", undefined, false);
  pty.readBytes(new Uint8Array(48 * 1024).fill(0x01));
  await nextTurn();
  assert(pty.paused, "paused for the spec-only client that joined");
  s.detach("json-2");
  assert(!pty.paused, "its JSON no longer counts once it left");
  pty.exit();
  await s.exited;

  // What is unacknowledged stays replayable: a ring of 256 KiB holds the window and a batch or two past it.
  const small = new ScriptedPty();
  const ringBound = session(small, new CollectingSink(), { flow, replayBytes: 256 * 1024 });
  ringBound.attach("binary-1", undefined, true, true);
  small.readBytes(new Uint8Array(32 * 1024).fill(0x61));
  await nextTurn();
  await new Promise((resolve) => setTimeout(resolve, 15));
  ringBound.ack(ringBound.stats().produced);
  assertEquals(ringBound.stats().window, 128 * 1024);
  small.exit();
  await ringBound.exited;
});

Deno.test("batch buffers are used again only past what the link still queues: nothing queued or held changes", async () => {
  const pty = new ScriptedPty();
  const sink = new CollectingSink();
  // The ring holds four 64 KiB batches; the link below queues six, so the ring lets go of queued ones.
  const s = session(pty, sink, { replayBytes: 256 * 1024 });
  s.attach("c1", undefined, true, true);
  const queued: { data: Uint8Array; fill: number }[] = [];
  const fillOf = (batch: number) => 0x21 + (batch % 90);
  for (let batch = 0; batch < 40; batch++) {
    pty.readBytes(new Uint8Array(64 * 1024).fill(fillOf(batch)));
    await nextTurn();
    s.ack(s.stats().produced);
    queued.push({ data: sink.chunks.at(-1)!.data, fill: fillOf(batch) });
    if (queued.length > 6) {
      const written = queued.shift()!;
      assert(written.data.every((byte) => byte === written.fill), `batch ${batch - 6} changed while queued`);
    }
    sink.buffered = queued.reduce((sum, frame) => sum + frame.data.length, 0);
  }
  for (const frame of queued) {
    assert(frame.data.every((byte) => byte === frame.fill), "a queued batch changed");
  }
  // A client attaching now is replayed what the ring holds: the last four batches, as they were.
  sink.chunks.length = 0;
  s.attach("c2", s.stats().produced - 4 * 64 * 1024, false, true);
  const replayed = concatBytes(sink.chunks.map((chunk) => chunk.data));
  assertEquals(replayed.length, 4 * 64 * 1024);
  for (let i = 0; i < 4; i++) {
    const fill = fillOf(36 + i);
    assert(
      replayed.subarray(i * 64 * 1024, (i + 1) * 64 * 1024).every((byte) => byte === fill),
      `replay ${i}`,
    );
  }
  pty.exit();
  await s.exited;
});

Deno.test("a replay is bounded by what it takes in the relay's queue: a spec-only client's by its JSON", async () => {
  const pty = new ScriptedPty();
  const sink = new CollectingSink();
  const s = session(pty, sink, { replayBytes: 4 * 1024 * 1024 });
  // 1 MiB of control bytes: 6 MiB as JSON, past the 1.5 MiB a replay may queue.
  for (let batch = 0; batch < 16; batch++) {
    pty.readBytes(new Uint8Array(64 * 1024).fill(0x01));
    await nextTurn();
  }
  const replay = (clientId: string, binary: boolean) => {
    sink.chunks.length = 0;
    sink.frames.length = 0;
    s.attach(clientId, 0, false, binary);
    const bytes = sink.chunks.reduce((sum, chunk) => sum + chunk.data.length, 0);
    return { bytes, gaps: sink.metas("session-0001").filter((line) => line.startsWith("coda:gap:")) };
  };
  assertEquals(replay("binary-1", true), { bytes: 1024 * 1024, gaps: [] });
  // Three 64 KiB batches fit: 1.15 MiB as JSON (a fourth would make 1.5 MiB and the envelopes).
  const json = replay("json-1", false);
  assertEquals(json.bytes, 3 * 64 * 1024);
  assertEquals(json.gaps, [`coda:gap:0-${13 * 64 * 1024}`]);
  pty.exit();
  await s.exited;
});
