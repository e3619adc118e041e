/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals } from "node:assert/strict";
import { applyModifiers, arrowSequence } from "./key_bar.tsx";

Deno.test("sticky Ctrl and Alt transform the next key", () => {
  assertEquals(applyModifiers("c", { ctrl: true, alt: false }), "\x03");
  assertEquals(applyModifiers("C", { ctrl: true, alt: false }), "\x03");
  assertEquals(applyModifiers("[", { ctrl: true, alt: false }), "\x1b");
  assertEquals(applyModifiers(" ", { ctrl: true, alt: false }), "\x00");
  assertEquals(applyModifiers("b", { ctrl: false, alt: true }), "\x1bb");
  assertEquals(applyModifiers("x", { ctrl: true, alt: true }), "\x1b\x18");
  assertEquals(applyModifiers("hello", { ctrl: true, alt: false }), "hello");
  assertEquals(arrowSequence("up", false), "\x1b[A");
  assertEquals(arrowSequence("left", true), "\x1bOD");
});
