import { deepEqual as assertEquals, equal, ok as assert, throws } from "node:assert/strict";
import {
  BINARY_SUBPROTOCOL,
  BinaryFrameType,
  decodeBinaryFrame,
  encodeFileFrame,
  encodeInputFrame,
  encodeOutputFrame,
  FILE_FIXED_HEADER_BYTES,
  MAX_TRANSFER_ID,
  OUTPUT_FIXED_HEADER_BYTES,
  prefixInPlace,
  reserveOutput,
  TRANSPORT_PREFIX_ROOM,
} from "./protocol.ts";

const sessionId = "sess_0123456789";
const clientId = crypto.randomUUID();
const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("output frames round-trip every field, targeted or broadcast, replayed or live, offsets past 2^32", () => {
  const data = new TextEncoder().encode("héllo \u{1F600}\r\n");
  for (
    const frame of [
      { sessionId, offset: 0, replay: false, data },
      { sessionId, clientId, offset: 123_456, replay: true, data },
      { sessionId, offset: 2 ** 40 + 7, replay: false, data: new Uint8Array() },
      { sessionId, offset: Number.MAX_SAFE_INTEGER, replay: true, data: bytes(0, 255, 0x1b) },
    ]
  ) {
    const encoded = encodeOutputFrame(frame);
    equal(encoded[0], BinaryFrameType.OUTPUT);
    equal(
      encoded.byteLength,
      OUTPUT_FIXED_HEADER_BYTES + sessionId.length + (frame.clientId?.length ?? 0) + frame.data.byteLength,
    );
    assertEquals(decodeBinaryFrame(encoded), { ok: true, value: { type: "output", ...frame } });
    assertEquals(decodeBinaryFrame(encoded.slice().buffer), {
      ok: true,
      value: { type: "output", ...frame },
    });
  }
});

Deno.test("input frames round-trip, with and without the client id", () => {
  const data = new TextEncoder().encode("ls -l\r");
  assertEquals(decodeBinaryFrame(encodeInputFrame({ sessionId, data })), {
    ok: true,
    value: { type: "input", sessionId, data },
  });
  assertEquals(decodeBinaryFrame(encodeInputFrame({ sessionId, clientId, data })), {
    ok: true,
    value: { type: "input", sessionId, clientId, data },
  });
});

Deno.test("decoding does not copy the payload: data is a view into the frame", () => {
  const encoded = encodeOutputFrame({ sessionId, offset: 5, replay: false, data: bytes(1, 2, 3) });
  const decoded = decodeBinaryFrame(encoded);
  assert(decoded.ok);
  equal(decoded.value.data.buffer, encoded.buffer);
  encoded[encoded.byteLength - 1] = 9;
  equal(decoded.value.data[2], 9);
  // A view into a larger buffer decodes at its own offset.
  const outer = new Uint8Array(encoded.byteLength + 10);
  outer.set(encoded, 10);
  const inner = decodeBinaryFrame(outer.subarray(10));
  assert(inner.ok && inner.value.type === "output");
  equal(inner.value.offset, 5);
  assertEquals([...inner.value.data], [1, 2, 9]);
});

Deno.test("every header field is validated with a clear error", () => {
  const good = encodeOutputFrame({ sessionId, clientId: "c1", offset: 1, replay: false, data: bytes(65) });
  const edit = (change: (frame: Uint8Array) => void) => {
    const frame = good.slice();
    change(frame);
    return frame;
  };
  const error = (frame: Uint8Array) => {
    const decoded = decodeBinaryFrame(frame);
    return decoded.ok ? "accepted" : decoded.error;
  };
  equal(error(new Uint8Array()), "binary frame: empty");
  equal(error(edit((f) => f[0] = 0x7b)), "binary frame: unknown type 0x7b");
  equal(error(good.subarray(0, 11)), "binary frame: 11 bytes, shorter than its 12-byte header");
  equal(error(good.subarray(0, 20)), "binary frame: 20 bytes, shorter than its 29-byte header");
  equal(error(edit((f) => f[1] = 0x02)), "binary frame: unknown flags 0x02");
  equal(error(edit((f) => f[2] = 3)), "binary frame: sessionId must be 8-64 characters of [A-Za-z0-9_-]");
  equal(error(edit((f) => f[12] = 0xc3)), "binary frame: sessionId must be 8-64 characters of [A-Za-z0-9_-]");
  equal(error(edit((f) => f[27] = 0x2f)), "binary frame: clientId must be 1-64 characters of [A-Za-z0-9_-]");
  equal(error(edit((f) => f[4] = 0x20)), "binary frame: offset exceeds 2^53 - 1");
  const input = encodeInputFrame({ sessionId, data: bytes(13) });
  input[1] = OUTPUT_FIXED_HEADER_BYTES;
  equal(error(input), "binary frame: unknown flags 0x0c");
  equal(error(good), "accepted");
});

Deno.test("encoding refuses what decoding would", () => {
  const data = bytes(1);
  throws(
    () => encodeOutputFrame({ sessionId: "short", offset: 0, replay: false, data }),
    /sessionId must be 8-64/,
  );
  throws(() => encodeOutputFrame({ sessionId, clientId: "a/b", offset: 0, replay: false, data }), /clientId/);
  throws(
    () => encodeOutputFrame({ sessionId, offset: -1, replay: false, data }),
    /offset must be a whole number/,
  );
  throws(() => encodeOutputFrame({ sessionId, offset: 1.5, replay: false, data }), /offset/);
  throws(() => encodeOutputFrame({ sessionId, offset: 2 ** 53, replay: false, data }), /offset/);
  throws(() => encodeInputFrame({ sessionId: "x".repeat(65), data }), /sessionId/);
  equal(BINARY_SUBPROTOCOL, "coda.v2");
});

Deno.test("binary frames: output in reserved room is framed where it lies; anything else is copied", () => {
  const data = reserveOutput(sessionId, 5);
  data.set([104, 101, 108, 108, 111]);
  const frame = encodeOutputFrame({ sessionId, offset: 7, replay: false, data });
  assert(frame.buffer === data.buffer, "no copy");
  const decoded = decodeBinaryFrame(frame);
  assert(decoded.ok && decoded.value.type === "output");
  assertEquals([decoded.value.offset, [...decoded.value.data]], [7, [104, 101, 108, 108, 111]]);
  // Targeted at a client the header is longer than the room: copied, the reserved bytes untouched.
  const targeted = encodeOutputFrame({ sessionId, clientId, offset: 7, replay: true, data });
  assert(targeted.buffer !== data.buffer);
  // A view further into the buffer, or a plain array, is copied too.
  assert(
    encodeOutputFrame({ sessionId, offset: 8, replay: false, data: data.subarray(1) }).buffer !== data.buffer,
  );
  const plain = new Uint8Array(64).subarray(OUTPUT_FIXED_HEADER_BYTES + sessionId.length);
  assert(encodeOutputFrame({ sessionId, offset: 0, replay: false, data: plain }).buffer !== plain.buffer);
});

Deno.test("binary frames: a transport's prefix goes into the room before a frame framed in place", () => {
  const data = reserveOutput(sessionId, 3);
  data.set([1, 2, 3]);
  const frame = encodeOutputFrame({ sessionId, offset: 9, replay: false, data });
  const joined = prefixInPlace(frame, new Uint8Array([0xaa, 0xbb, 0xcc, 0xdd, 0xee]));
  assert(joined && joined.buffer === data.buffer, "no copy");
  assertEquals([...joined.subarray(0, 5)], [0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
  assertEquals(joined.subarray(5), frame);
  const decoded = decodeBinaryFrame(joined.subarray(5));
  assert(decoded.ok && decoded.value.type === "output");
  assertEquals([decoded.value.offset, [...decoded.value.data]], [9, [1, 2, 3]]);
  // A copied frame has no room, and no prefix is longer than the room.
  const copied = encodeOutputFrame({ sessionId, clientId, offset: 9, replay: false, data });
  equal(prefixInPlace(copied, new Uint8Array(1)), undefined);
  equal(prefixInPlace(frame, new Uint8Array(TRANSPORT_PREFIX_ROOM + 1)), undefined);
});

Deno.test("upload and download frames round-trip the transfer id, the offset and the client id", () => {
  const data = new Uint8Array([0, 1, 2, 0x1b, 255]);
  for (
    const frame of [
      { type: "upload" as const, sessionId, transferId: 1, offset: 0, data },
      {
        type: "upload" as const,
        sessionId,
        clientId,
        transferId: MAX_TRANSFER_ID,
        offset: 2 ** 40 + 3,
        data,
      },
      {
        type: "download" as const,
        sessionId,
        clientId,
        transferId: 77,
        offset: 65536,
        data: new Uint8Array(),
      },
      { type: "download" as const, sessionId, transferId: 5, offset: Number.MAX_SAFE_INTEGER, data },
    ]
  ) {
    const encoded = encodeFileFrame(frame);
    equal(encoded[0], frame.type === "upload" ? BinaryFrameType.UPLOAD : BinaryFrameType.DOWNLOAD);
    equal(
      encoded.byteLength,
      FILE_FIXED_HEADER_BYTES + sessionId.length + (frame.clientId?.length ?? 0) + frame.data.byteLength,
    );
    assertEquals(decodeBinaryFrame(encoded), { ok: true, value: frame });
  }
});

Deno.test("upload and download frames refuse a zero transfer id, flags, and bad fields", () => {
  const good = encodeFileFrame({ type: "upload", sessionId, transferId: 3, offset: 0, data: bytes(1) });
  const zeroId = good.slice();
  zeroId.fill(0, 4, 8);
  assertEquals(decodeBinaryFrame(zeroId), {
    ok: false,
    error: "binary frame: transferId must be 1 to 2^32 - 1",
  });
  const flagged = good.slice();
  flagged[1] = 1;
  assertEquals(decodeBinaryFrame(flagged), { ok: false, error: "binary frame: unknown flags 0x01" });
  assertEquals(decodeBinaryFrame(good.subarray(0, 10)).ok, false, "shorter than its header");
  throws(
    () => encodeFileFrame({ type: "download", sessionId, transferId: 0, offset: 0, data: bytes() }),
    RangeError,
  );
  throws(
    () => encodeFileFrame({ type: "download", sessionId, transferId: 1, offset: -1, data: bytes() }),
    RangeError,
  );
});
