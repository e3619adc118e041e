import { deepEqual as assertEquals } from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes joins parts, views included, into an array of its own", () => {
  const pool = new Uint8Array([9, 1, 2, 3, 9]);
  const joined = concatBytes([pool.subarray(1, 4), new Uint8Array(0), new Uint8Array([4])]);
  assertEquals(joined, new Uint8Array([1, 2, 3, 4]));
  assertEquals(joined.buffer.byteLength, 4);
  assertEquals(concatBytes([]), new Uint8Array(0));
});
