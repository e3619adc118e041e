import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { completeLength, ReplayBuffer, splitChunk } from "./replay_buffer.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(bytes);

Deno.test("offsets count bytes and slices resume exactly", () => {
  const buffer = new ReplayBuffer(1024);
  assertEquals(buffer.append(encode("héllo")).offset, 0);
  assertEquals(buffer.append(encode(" wörld")).offset, 6);
  assertEquals(buffer.end, 13);
  assertEquals(buffer.slice(6).chunks.map((c) => decode(c.data)), [" wörld"]);
  assertEquals(buffer.slice(13).chunks, []);
  assertEquals(buffer.slice(0).gap, null);
});

Deno.test("a slice inside a character starts at the next character boundary", () => {
  const buffer = new ReplayBuffer(1024);
  buffer.append(encode("aé€b"));
  const { chunks } = buffer.slice(2);
  assertEquals([chunks[0].offset, decode(chunks[0].data)], [3, "€b"]);
  assertEquals(decode(buffer.slice(3).chunks[0].data), "€b");
});

Deno.test("old chunks are evicted past capacity and reported as a gap", () => {
  const buffer = new ReplayBuffer(10);
  buffer.append(encode("aaaa"));
  buffer.append(encode("bbbb"));
  buffer.append(encode("cccc"));
  assertEquals(buffer.start, 4);
  assertEquals(buffer.heldBytes, 8);
  const { chunks, gap } = buffer.slice(0);
  assertEquals(gap, { from: 0, to: 4 });
  assertEquals(chunks.map((c) => decode(c.data)), ["bbbb", "cccc"]);
  buffer.append(encode("x".repeat(50)));
  assertEquals(buffer.chunkCount, 1, "one oversized chunk is kept whole");
});

Deno.test("memory stays bounded over many appends", () => {
  const buffer = new ReplayBuffer(4096);
  const line = encode("y\n");
  for (let i = 0; i < 100_000; i++) buffer.append(line);
  assertEquals(buffer.end, 200_000);
  assertEquals(buffer.heldBytes, 4096);
  assertThrows(() => new ReplayBuffer(0), RangeError);
});

Deno.test("completeLength leaves out only the start of a character whose other bytes have not come", () => {
  const bytes = encode("aé😀");
  // a | é (2) | 😀 (4)
  const lengths = Array.from({ length: bytes.length + 1 }, (_, n) => completeLength(bytes.subarray(0, n)));
  assertEquals(lengths, [0, 1, 1, 3, 3, 3, 3, 7]);
  // Invalid input is not held: stray continuation bytes, a byte no character starts with.
  assertEquals(completeLength(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80])), 5);
  assertEquals(completeLength(new Uint8Array([0x61, 0xff])), 2);
});

Deno.test("splitChunk cuts a chunk into contiguous pieces within the budget, never inside a character", () => {
  const buffer = new ReplayBuffer(1 << 20);
  buffer.append(encode("x"));
  const chunk = buffer.append(encode("\x01".repeat(1001) + "😀é".repeat(300)));
  const pieces = splitChunk(chunk, 1024);
  let offset = chunk.offset;
  let text = "";
  for (const piece of pieces) {
    assertEquals(piece.offset, offset);
    assertEquals(piece.data.length <= 1024, true);
    text += decode(piece.data);
    offset += piece.data.length;
  }
  assertEquals(text, decode(chunk.data));
  assertEquals(offset, buffer.end);
  assertEquals(splitChunk(chunk, 1 << 20), [chunk]);
});

Deno.test("each chunk let go of is told, oldest first, once", () => {
  const evicted: number[] = [];
  const ring = new ReplayBuffer(10, (chunk) => evicted.push(chunk.offset));
  for (let i = 0; i < 6; i++) ring.append(new Uint8Array(4));
  // 24 bytes appended, 8 held (two chunks of 4): the first four chunks went, in order.
  assertEquals(evicted, [0, 4, 8, 12]);
  assertEquals(ring.start, 16);
});
