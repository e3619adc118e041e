import { deepEqual as assertEquals } from "node:assert/strict";
import { dropUtf8Prefix, jsonTextBytesBound, utf8Length } from "./utf8.ts";

Deno.test("utf8Length counts UTF-8 bytes like TextEncoder", () => {
  for (const text of ["", "abc", "é", "✓", "😀", "a😀é✓\r\n", "\ud800x", "\udc00"]) {
    assertEquals(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
  }
});

Deno.test("dropUtf8Prefix removes whole bytes from the front", () => {
  assertEquals(dropUtf8Prefix("héllo", 3), "llo");
  assertEquals(dropUtf8Prefix("abc", 0), "abc");
  assertEquals(dropUtf8Prefix("abc", 3), "");
});

Deno.test("utf8Length matches TextEncoder on lone surrogates and NUL", () => {
  for (const text of ["", "a😀é€\u0000", "\ud800x", "\udc00", "\ud800"]) {
    assertEquals(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
  }
});

/** What `bytes` take as a JSON string's text once decoded and sent: the figure the bound bounds. */
function jsonTextBytes(bytes: Uint8Array): number {
  return utf8Length(JSON.stringify(new TextDecoder().decode(bytes))) - 2;
}

Deno.test("jsonTextBytesBound is exact for ASCII and six bytes per control byte", () => {
  const ascii = new TextEncoder().encode("echo hello; ls -la /tmp | grep x ~ 0123456789".repeat(10));
  assertEquals(jsonTextBytesBound(ascii), ascii.length);
  assertEquals(jsonTextBytesBound(ascii), jsonTextBytes(ascii));
  const controls = new Uint8Array(1001).fill(0x01);
  assertEquals(jsonTextBytesBound(controls), 6 * 1001);
  assertEquals(jsonTextBytesBound(controls), jsonTextBytes(controls));
  const quotes = new TextEncoder().encode('a"b\\c'.repeat(7));
  assertEquals(jsonTextBytesBound(quotes), jsonTextBytes(quotes));
  assertEquals(jsonTextBytesBound(new Uint8Array(0)), 0);
});

Deno.test("jsonTextBytesBound bounds any bytes, at any alignment", () => {
  // Bytes drawn mostly from what the fast path must notice: controls, quotes, backslashes, high bytes.
  const alphabet = [
    0x00,
    0x01,
    0x0a,
    0x0d,
    0x1b,
    0x1f,
    0x20,
    0x21,
    0x22,
    0x41,
    0x5c,
    0x7e,
    0x7f,
    0x80,
    0xc3,
    0xa9,
    0xe2,
    0x94,
    0x80,
    0xf0,
    0x9f,
    0xff,
  ];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let run = 0; run < 500; run++) {
    const buffer = new Uint8Array(3 + Math.floor(random() * 200));
    for (let i = 0; i < buffer.length; i++) {
      buffer[i] = random() < 0.5 ? 0x61 : alphabet[Math.floor(random() * alphabet.length)];
    }
    const bytes = buffer.subarray(run % 4);
    const bound = jsonTextBytesBound(bytes);
    const exact = jsonTextBytes(bytes);
    if (bound < exact) throw new Error(`bound ${bound} < ${exact} for ${Array.from(bytes)}`);
    const perByte = Array.from(bytes).reduce(
      (sum, byte) => sum + (byte < 0x20 ? 6 : byte === 0x22 || byte === 0x5c ? 2 : byte >= 0x80 ? 3 : 1),
      0,
    );
    assertEquals(bound, perByte, "the word-at-a-time path counts what the byte-at-a-time one does");
  }
});
