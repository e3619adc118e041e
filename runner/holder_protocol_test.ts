import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import * as v from "valibot";
import { concatBytes } from "@coda/relay/bytes";
import { encodeOutputFrame } from "@coda/relay/protocol";
import {
  encodeHolderMessage,
  encodeHolderOutput,
  FromHolderSchema,
  HOLDER_PROTOCOL_VERSION,
  HolderFrameReader,
  MAX_HOLDER_FRAME_BYTES,
  ToHolderSchema,
} from "./holder_protocol.ts";

const SESSION = "session-0001";

Deno.test("holder frames: messages, bytes and output round-trip whatever the reads' boundaries", () => {
  const bytes = crypto.getRandomValues(new Uint8Array(60_000));
  const stream = concatBytes([
    ...encodeHolderMessage({ type: "holder-join", protocol: HOLDER_PROTOCOL_VERSION, role: "runner" }),
    ...encodeHolderMessage({ type: "stdin", sessionId: SESSION, data: "ls\r" }),
    ...encodeHolderMessage({ type: "attach", sessionId: SESSION, clientId: "c1", offset: 5 }),
  ]);
  for (const step of [1, 3, 7, stream.length]) {
    const reader = new HolderFrameReader(ToHolderSchema);
    const frames = [];
    for (let at = 0; at < stream.length; at += step) {
      frames.push(...reader.push(stream.subarray(at, at + step)));
    }
    assertEquals(
      frames.map((frame) => frame.ok && frame.value.kind === "message" && frame.value.message.type),
      [
        "holder-join",
        "stdin",
        "attach",
      ],
    );
  }
  const reader = new HolderFrameReader(FromHolderSchema);
  const output = concatBytes([
    ...encodeHolderOutput({ sessionId: SESSION, clientId: "c1", offset: 2 ** 40, replay: true, data: bytes }),
    ...encodeHolderMessage({ type: "end", sessionId: SESSION, exitCode: 0 }),
  ]);
  const [first, second] = [...reader.push(output.subarray(0, 100)), ...reader.push(output.subarray(100))];
  assert(first.ok && first.value.kind === "output");
  assertEquals(first.value.chunk, {
    sessionId: SESSION,
    clientId: "c1",
    offset: 2 ** 40,
    replay: true,
    data: bytes,
  });
  assertEquals(
    first.value.frame,
    encodeOutputFrame({ sessionId: SESSION, clientId: "c1", offset: 2 ** 40, replay: true, data: bytes }),
    "the relay frame it came as, to forward as it is",
  );
  assert(second.ok && second.value.kind === "message");
  assertEquals(second.value.message, { type: "end", sessionId: SESSION, exitCode: 0 });
});

Deno.test("holder frames: a message's `data` bytes travel after its JSON and come back as bytes", () => {
  const data = new Uint8Array([0, 1, 2, 255]);
  // Any message may carry file bytes as `data`; a message of no schema yet stands in for one here.
  const parts = encodeHolderMessage({ type: "holder-status-request", data } as never);
  assert(!new TextDecoder().decode(parts[2]).includes("data"), "not inside the JSON");
  const reader = new HolderFrameReader(v.looseObject({ type: v.string() }));
  const [frame] = reader.push(concatBytes(parts));
  assert(frame.ok && frame.value.kind === "message");
  assertEquals((frame.value.message as unknown as { data: Uint8Array }).data, data);
});

Deno.test("holder frames: oversized, unknown, malformed and invalid frames are errors", () => {
  const frame = (kind: number, body: Uint8Array) => {
    const head = new Uint8Array(5);
    new DataView(head.buffer).setUint32(0, body.length + 1);
    head[4] = kind;
    return concatBytes([head, body]);
  };
  const errors = (bytes: Uint8Array) =>
    new HolderFrameReader(ToHolderSchema).push(bytes).map((decoded) => decoded.ok ? "ok" : decoded.error);
  const huge = new Uint8Array(4);
  new DataView(huge.buffer).setUint32(0, MAX_HOLDER_FRAME_BYTES + 1);
  assertEquals(errors(huge), [`holder frame of ${MAX_HOLDER_FRAME_BYTES + 1} bytes`]);
  assertEquals(errors(frame(9, new Uint8Array(1))), ["holder frame: unknown kind 9"]);
  assertEquals(errors(frame(0, new TextEncoder().encode("{nope"))), ["holder frame: not valid JSON"]);
  assert(errors(frame(0, new TextEncoder().encode('{"type":"stdin"}')))[0].startsWith("holder frame: "));
  assertEquals(errors(frame(1, new Uint8Array([0, 0, 0, 9, 1]))), [
    "holder frame: JSON longer than the frame",
  ]);
  assert(errors(frame(2, new Uint8Array([1, 0, 12, 0])))[0].startsWith("binary frame: "));
});

Deno.test("holder frames: a small frame read into a large buffer is copied out rather than keep the buffer", () => {
  const frame = concatBytes(
    encodeHolderOutput({ sessionId: SESSION, offset: 0, replay: false, data: bytesOf(100) }),
  );
  const large = new Uint8Array(256 * 1024);
  large.set(frame);
  const [small] = new HolderFrameReader(FromHolderSchema).push(large.subarray(0, frame.length));
  assert(small.ok && small.value.kind === "output");
  assert(small.value.frame.buffer.byteLength < 1024, "its own buffer");
  const big = concatBytes(
    encodeHolderOutput({ sessionId: SESSION, offset: 0, replay: false, data: bytesOf(100_000) }),
  );
  const [kept] = new HolderFrameReader(FromHolderSchema).push(big);
  assert(kept.ok && kept.value.kind === "output");
  assert(kept.value.frame.buffer === big.buffer, "a frame near its buffer's size is not copied");
});

function bytesOf(length: number): Uint8Array {
  return new Uint8Array(length).fill(0x61);
}
