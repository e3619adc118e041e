import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { OscFilter } from "./osc_filter.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

function collecting(maxBytes = 64) {
  const found: string[] = [];
  let ordinary = 0;
  const filter = new OscFilter({
    introducers: [bytes("]7;"), bytes("]133;")],
    maxBytes,
    onSequence: (sequence) => found.push(`${sequence.introducer}:${text(sequence.payload)}`),
    onText: () => ordinary++,
  });
  return { filter, found, ordinary: () => ordinary };
}

Deno.test("OSC filter: sequences ended by BEL or ST come out, split reads are joined, others pass", () => {
  const { filter, found, ordinary } = collecting();
  const out = [
    filter.filter(bytes("a\x1b]7;file://h/x\x07b\x1b]13")),
    filter.filter(bytes("3;A\x1b\\c\x1b[31mred\x1b]2;title\x07")),
  ].map(text).join("");
  assertEquals(out, "abc\x1b[31mred\x1b]2;title\x07");
  assertEquals(found, ["0:file://h/x", "1:A"]);
  assert(!filter.holding);
  assert(ordinary() >= 3, "ordinary output between the sequences is reported");
});

Deno.test("OSC filter: a start held back is given up by flush; one too long to be ours is output", () => {
  const { filter } = collecting(16);
  assertEquals(text(filter.filter(bytes("x\x1b]7;fi"))), "x");
  assert(filter.holding);
  assertEquals(text(filter.flush()), "\x1b]7;fi");
  const long = `\x1b]7;${"y".repeat(40)}`;
  // Too long to hold: output as it is, but a lone ESC ending the read may still start one of ours.
  assertEquals(text(filter.filter(bytes(`${long}\x1b`))), long);
  assert(filter.holding);
  assertEquals(text(filter.filter(bytes("]133;A\x07z"))), "z");
});

Deno.test("OSC filter: the caller's first ESC is used for the read it was found in, never past a held start", () => {
  const { filter, found } = collecting();
  const first = bytes("ab\x1b]7;/x\x07");
  assertEquals(text(filter.filter(first, 2)), "ab");
  assertEquals(found, ["0:/x"]);
  // A read without ESC, said so, passes untouched.
  const plain = bytes("plain");
  assert(filter.filter(plain, -1) === plain);
  // A held start joins the next read: the caller's "no ESC in it" says nothing of the joined bytes.
  assertEquals(text(filter.filter(bytes("c\x1b]13"), 1)), "c");
  assertEquals(text(filter.filter(bytes("3;B\x07d"), -1)), "d");
  assertEquals(found, ["0:/x", "1:B"]);
});
