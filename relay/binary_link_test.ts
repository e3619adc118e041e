import { deepEqual as assertEquals, equal, ok as assert } from "node:assert/strict";
import {
  BINARY_SUBPROTOCOL,
  CloseCode,
  encodeInputFrame,
  encodeOutputFrame,
  MetaLine,
  PROTOCOL_VERSION,
} from "./protocol.ts";
import { concatBytes } from "./bytes.ts";
import { connectClient, relayTest, type ScriptedClient, uniqueId, waitFor } from "./testing.ts";
import { utf8Length } from "./utf8.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const UUID = /^[0-9a-f-]{36}$/;

/** The client's output frames as plain records (payload as an array of byte values). */
const framesOf = (client: ScriptedClient) =>
  client.frames.map((frame) => frame.type === "output" ? { ...frame, data: [...frame.data] } : frame);

relayTest(
  "a binary runner and a coda.v2 client: replay flagged, live as sent, stdin as binary",
  async (h) => {
    const runner = await h.runner(uniqueId("runner"), "user-1", "header", true);
    const welcome = await runner.welcome();
    assertEquals([welcome.protocol, welcome.binary], [PROTOCOL_VERSION, true]);
    const sessionId = uniqueId("session");
    runner.write(sessionId, "before\r\n");
    const client = await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    await client.opened;
    equal(client.socket.protocol, BINARY_SUBPROTOCOL, "the relay echoes the subprotocol");
    await client.meta(MetaLine.cwd("/home/test"));
    await waitFor(() => client.output() === "before\r\n", "the replay");
    // Invalid UTF-8 and control bytes pass untouched: nothing decodes them.
    const live = new Uint8Array([0x1b, 0x5b, 0x36, 0x6e, 0xff, 0x00, 0xc3]);
    runner.write(sessionId, live);
    await waitFor(() => client.frames.length === 2, "the live frame");
    assertEquals(framesOf(client), [
      { type: "output", sessionId, offset: 0, replay: true, data: [...encoder.encode("before\r\n")] },
      { type: "output", sessionId, offset: 8, replay: false, data: [...live] },
    ]);
    equal(
      client.received.filter((m) => m.type === "stdout").length,
      0,
      "no JSON stdout for a coda.v2 client",
    );

    client.sendInput(sessionId, "ls ");
    client.send({ type: "stdin", sessionId, data: "-é\r" });
    await waitFor(() => runner.stdin(sessionId) === "ls -é\r", "stdin at the runner");
    equal(runner.inputClientIds.length, 2, "both reached the runner as binary input frames");
    assert(runner.inputClientIds.every((id) => UUID.test(id)), "naming the client");
  },
);

relayTest(
  "a binary runner and a spec-only JSON client: characters split across frames arrive whole",
  async (h) => {
    const runner = await h.runner(uniqueId("runner"), "user-1", "header", true);
    await runner.welcome();
    const sessionId = uniqueId("session");
    const text = "héllo wörld ✓ 😀 € end";
    const bytes = encoder.encode(text);
    const half = bytes.indexOf(0xf0) + 2; // inside the 😀
    // One byte per frame: every multi-byte character is split, across the replay/live boundary too.
    for (let i = 0; i < half; i++) runner.write(sessionId, bytes.subarray(i, i + 1));
    const client = await connectClient(h, { userId: "user-1", sessionId });
    await client.opened;
    equal(client.socket.protocol, "", "no subprotocol offered, none chosen");
    await client.meta(MetaLine.cwd("/home/test"));
    await waitFor(
      () => client.output().length > 0 && client.output() === text.slice(0, text.indexOf("😀")),
      "replay",
    );
    for (let i = half; i < bytes.length; i++) runner.write(sessionId, bytes.subarray(i, i + 1));
    await client.waitOutput(" end");
    equal(client.output(), text);
    const stdout = client.received.filter((m) => m.type === "stdout");
    let expected = 0;
    for (const frame of stdout) {
      equal(frame.offset, expected, "offsets count the bytes of the data before");
      expected += utf8Length(frame.data as string);
    }
    equal(expected, bytes.byteLength);
    assert(!client.output().includes("\ufffd"));

    client.send({ type: "stdin", sessionId, data: "é" });
    await waitFor(() => runner.stdin(sessionId) === "é", "JSON stdin at the binary runner");
    equal(runner.inputClientIds.length, 1, "as a binary input frame");
  },
);

relayTest(
  "an old JSON runner and a coda.v2 client: output translated to binary frames, stdin to JSON",
  async (h) => {
    const runner = await h.runner(uniqueId("runner"), "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    runner.write(sessionId, "replayed é\r\n");
    const client = await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    await client.meta(MetaLine.cwd("/home/test"));
    await waitFor(() => client.frames.length === 1, "the replay");
    runner.write(sessionId, "live ✓");
    await client.waitOutput("live ✓");
    assertEquals(framesOf(client), [
      { type: "output", sessionId, offset: 0, replay: true, data: [...encoder.encode("replayed é\r\n")] },
      { type: "output", sessionId, offset: 13, replay: false, data: [...encoder.encode("live ✓")] },
    ]);
    const e = encoder.encode("é");
    client.send(encodeInputFrame({ sessionId, data: e.subarray(0, 1) }));
    client.send(encodeInputFrame({ sessionId, data: e.subarray(1) }));
    client.sendInput(sessionId, "\r");
    await waitFor(() => runner.stdin(sessionId) === "é\r", "stdin as JSON, the split character whole");
    equal(runner.inputClientIds.length, 0);
  },
);

relayTest(
  "binary frames for another session are refused: a client's strike out 1008, a runner's reach nobody",
  async (h) => {
    const runner = await h.runner(uniqueId("runner"), "user-1", "header", true);
    await runner.welcome();
    const intruder = await h.runner(uniqueId("runner"), "user-2", "header", true);
    await intruder.welcome();
    const sessionId = uniqueId("session");
    const other = uniqueId("session");
    const client = await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    await client.meta(MetaLine.cwd("/home/test"));

    // Another user's runner broadcasts and targets into the session: nothing arrives.
    intruder.write(sessionId, "injected");
    intruder.send(
      encodeOutputFrame({ sessionId, offset: 0, replay: false, data: encoder.encode("injected") }),
    );
    runner.write(sessionId, "ok");
    await client.waitOutput("ok");
    equal(client.output(), "ok");

    // The client's own frames get through between the foreign ones, until the 10th strike.
    client.sendInput(sessionId, "mine");
    for (let i = 0; i < 5; i++) client.sendInput(other, "theirs");
    await waitFor(() => runner.stdin(sessionId) === "mine", "own stdin");
    // An output frame or one naming a client id is malformed from a client.
    client.send(encodeOutputFrame({ sessionId, offset: 0, replay: false, data: encoder.encode("x") }));
    client.send(encodeInputFrame({ sessionId, clientId: "someone-else", data: encoder.encode("x") }));
    for (let i = 0; i < 3; i++) client.sendInput(other, "theirs");
    const closed = await client.closed;
    equal(closed.code, CloseCode.POLICY);
    equal(runner.stdin(sessionId), "mine");
    equal(runner.stdin(other), "");
    equal(intruder.stdin(other), "");
    assert((await h.metrics()).includes('reason="foreign_session"'));
  },
);

relayTest(
  "byte-exact under a 4 MiB stream: a coda.v2 client and a JSON client on one binary runner",
  async (h) => {
    const runner = await h.runner(uniqueId("runner"), "user-1", "header", true);
    await runner.welcome();
    const sessionId = uniqueId("session");
    const binary = await connectClient(h, { userId: "user-1", sessionId }, { binary: true });
    const json = await connectClient(h, { userId: "user-1", sessionId });
    await binary.meta(MetaLine.cwd("/home/test"));
    await json.meta(MetaLine.cwd("/home/test"));
    // Random bytes: every byte value, characters split at every chunk boundary, invalid UTF-8 too.
    let seed = 7;
    const stream = new Uint8Array(4 * 1024 * 1024).map(() =>
      (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24
    );
    const chunk = 4093;
    const batch = 64 * chunk;
    for (let at = 0; at < stream.byteLength; at += batch) {
      for (let i = at; i < Math.min(at + batch, stream.byteLength); i += chunk) {
        runner.write(sessionId, stream.subarray(i, Math.min(i + chunk, stream.byteLength)));
      }
      const sent = Math.min(at + batch, stream.byteLength);
      await waitFor(() => binary.outputBytes().byteLength === sent, `binary client at ${sent}`);
    }
    assertEquals(concatBytes([binary.outputBytes()]), stream);
    let expected = 0;
    for (const frame of binary.frames) {
      assert(frame.type === "output" && frame.offset === expected && !frame.replay);
      expected += frame.data.byteLength;
    }
    const whole = decoder.decode(stream);
    await waitFor(() => json.output().length === whole.length, "the JSON client's text");
    equal(json.output(), whole, "the same text a decoder makes of the whole stream");
    assert(!binary.isClosed && !json.isClosed);
  },
);
