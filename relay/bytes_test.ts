import { deepEqual as assertEquals } from "node:assert/strict";
import { concatBytes, indexOfByte } from "./bytes.ts";

Deno.test("concatBytes joins parts, views included, into an array of its own", () => {
  const pool = new Uint8Array([9, 1, 2, 3, 9]);
  const joined = concatBytes([pool.subarray(1, 4), new Uint8Array(0), new Uint8Array([4])]);
  assertEquals(joined, new Uint8Array([1, 2, 3, 4]));
  assertEquals(joined.buffer.byteLength, 4);
  assertEquals(concatBytes([]), new Uint8Array(0));
});

Deno.test("indexOfByte finds what indexOf finds, at every alignment, start and length", () => {
  const pool = new Uint8Array(160);
  for (let trial = 0; trial < 3000; trial++) {
    crypto.getRandomValues(pool);
    // Sparse targets, as ESC in terminal output; sometimes none at all.
    for (let i = 0; i < pool.length; i++) pool[i] = pool[i] < 4 ? 27 : pool[i] === 27 ? 28 : pool[i];
    if (trial % 5 === 0) pool.fill(65);
    const offset = trial % 9;
    const view = pool.subarray(offset, offset + (trial % 140));
    const from = trial % 3 === 0 ? 0 : trial % 17;
    assertEquals(indexOfByte(view, 27, from), view.indexOf(27, from), `trial ${trial}`);
  }
  assertEquals(indexOfByte(new Uint8Array([255, 255, 0, 255]), 0), 2);
  assertEquals(
    indexOfByte(new Uint8Array([0x80, 0x7f, 0x1b]), 0x1b),
    2,
    "high bits do not confuse the trick",
  );
  assertEquals(indexOfByte(new Uint8Array(0), 27), -1);
});
