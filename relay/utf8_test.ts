import { deepEqual as assertEquals } from "node:assert/strict";
import { dropUtf8Prefix, utf8Length } from "./utf8.ts";

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
