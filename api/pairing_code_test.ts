import { equal, match } from "node:assert/strict";
import { CODE_ALPHABET, formatCode, generateCode, normalizeCode } from "./pairing_code.ts";

Deno.test("the alphabet is Crockford base32: 32 characters without I, L, O, U", () => {
  equal(new Set(CODE_ALPHABET).size, 32);
  match(CODE_ALPHABET, /^[^ILOU]+$/);
});

Deno.test("generated codes use the alphabet and format as XXXX-XXXX", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const code = generateCode();
    match(code, /^[0-9A-HJKMNP-TV-Z]{8}$/);
    match(formatCode(code), /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    seen.add(code);
  }
  equal(seen.size, 200);
});

Deno.test("normalizeCode: case, hyphens, spaces and look-alikes; formatCode shows XXXX-XXXX", () => {
  equal(normalizeCode(" k7qd-m2xp "), "K7QDM2XP");
  equal(normalizeCode("k7qd m2xp"), "K7QDM2XP");
  equal(formatCode(normalizeCode("k7qdm2xp") ?? ""), "K7QD-M2XP");
  // People copy O for 0 and I or L for 1: folded, as Crockford base32 does.
  equal(normalizeCode("k7qo-m2il"), "K7Q0M211");
  equal(normalizeCode("abcd-ef12"), "ABCDEF12");
  equal(normalizeCode(" ab cd ef 12 "), "ABCDEF12");
  equal(normalizeCode("ABCDEF12"), "ABCDEF12");
  equal(normalizeCode("oIlO-0000"), "0110" + "0000");
  equal(normalizeCode("ABCD-EF1"), null);
  equal(normalizeCode("ABCD-EF123"), null);
  equal(normalizeCode("ABCU-EF12"), null);
  equal(normalizeCode("AB!D-EF12"), null);
});
