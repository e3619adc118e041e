import { deepStrictEqual as assertEquals, equal, match, throws } from "node:assert/strict";
import { base64url, fromBase64url, randomId, sha256Hex } from "./crypto.ts";

Deno.test("base64url round-trips and rejects other alphabets", () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
  assertEquals(fromBase64url(base64url(bytes)), bytes);
  equal(base64url(Uint8Array.of(0xfb, 0xff)), "-_8", "the url alphabet, no padding");
  assertEquals(fromBase64url("-_8"), Uint8Array.of(0xfb, 0xff));
  for (const bad of ["a+b/", "-_8=", "-_ 8", "-_8\n", "A"]) throws(() => fromBase64url(bad), bad);
});

Deno.test("randomId: 16 bytes → 22 base64url characters, unique", () => {
  match(randomId(), /^[A-Za-z0-9_-]{22}$/);
  match(randomId(32), /^[A-Za-z0-9_-]{43}$/);
  equal(new Set(Array.from({ length: 100 }, () => randomId())).size, 100);
});

Deno.test("sha256Hex", async () => {
  equal(await sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});
