import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { encodedBound, ReplayBuffer, splitChunk } from "./replay_buffer.ts";

Deno.test("offsets count UTF-8 bytes and slices resume exactly", () => {
  const buffer = new ReplayBuffer(1024);
  assertEquals(buffer.append("héllo").offset, 0);
  assertEquals(buffer.append(" wörld").offset, 6);
  assertEquals(buffer.end, 13);
  assertEquals(buffer.slice(6).chunks.map((c) => c.data), [" wörld"]);
  assertEquals(buffer.slice(13).chunks, []);
  assertEquals(buffer.slice(0).gap, null);
});

Deno.test("a slice inside a chunk starts at the next character boundary", () => {
  const buffer = new ReplayBuffer(1024);
  buffer.append("aé€b");
  const { chunks } = buffer.slice(2);
  assertEquals(chunks[0], { offset: 3, data: "€b", bytes: 4, encoded: 4 });
});

Deno.test("old chunks are evicted past capacity and reported as a gap", () => {
  const buffer = new ReplayBuffer(10);
  buffer.append("aaaa");
  buffer.append("bbbb");
  buffer.append("cccc");
  assertEquals(buffer.start, 4);
  assertEquals(buffer.heldBytes, 8);
  const { chunks, gap } = buffer.slice(0);
  assertEquals(gap, { from: 0, to: 4 });
  assertEquals(chunks.map((c) => c.data), ["bbbb", "cccc"]);
  buffer.append("x".repeat(50));
  assertEquals(buffer.chunkCount, 1, "one oversized chunk is kept whole");
});

Deno.test("memory stays bounded over many appends", () => {
  const buffer = new ReplayBuffer(4096);
  for (let i = 0; i < 100_000; i++) buffer.append("y\n");
  assertEquals(buffer.end, 200_000);
  assertEquals(buffer.heldBytes, 4096);
  assertThrows(() => new ReplayBuffer(0), RangeError);
});

Deno.test("encodedSince counts what the output takes as JSON, escapes included", () => {
  const buffer = new ReplayBuffer(1024);
  buffer.append("abcd");
  buffer.append("\x01\x01");
  buffer.append('é"');
  // 4 + (2 + 2 × 5) + (3 + 5): the control bytes and the quote are escaped.
  assertEquals(buffer.encodedSince(0), 24);
  assertEquals(buffer.encodedSince(4), 20);
  assertEquals(buffer.encodedSince(5), 14);
  assertEquals(buffer.encodedSince(buffer.end), 0);
  assertEquals(encodedBound("\x01\n\\x", 4), 19);
});

Deno.test("splitChunk cuts a chunk into contiguous pieces within the budget, never inside a surrogate pair", () => {
  const buffer = new ReplayBuffer(1 << 20);
  buffer.append("x");
  const chunk = buffer.append("\x01".repeat(1000) + "😀".repeat(300));
  const pieces = splitChunk(chunk, 1024);
  assertEquals(pieces.map((piece) => piece.data).join(""), chunk.data);
  let offset = chunk.offset;
  for (const piece of pieces) {
    assertEquals(piece.offset, offset);
    assertEquals(piece.encoded <= 1024, true);
    assertEquals(piece.data.includes("\ufffd"), false);
    assertEquals(/^[\udc00-\udfff]|[\ud800-\udbff]$/.test(piece.data), false);
    offset += piece.bytes;
  }
  assertEquals(offset, buffer.end);
  assertEquals(splitChunk(chunk, 1 << 20), [chunk]);
});
