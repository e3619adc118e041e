/**
 * Pairing codes: 8 characters of Crockford base32 (no I, L, O, U), 40 bits
 * from `crypto.getRandomValues`, shown as `XXXX-XXXX`, valid for 10 minutes.
 * Browser-safe (no Deno APIs): the SPA's pairing page uses it too.
 *
 * @module
 */

/** The code alphabet: digits and letters without I, L, O and U. */
export const CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Characters in a code. */
export const CODE_LENGTH = 8;
/** How long a pairing (and so its code) can be approved and collected. */
export const PAIRING_TTL_MS = 10 * 60 * 1000;

/** A new random code, unformatted (`CODE_LENGTH` characters). */
export function generateCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(CODE_LENGTH));
  // 256 is a multiple of 32, so `& 31` picks every character with equal probability.
  return Array.from(bytes, (b) => CODE_ALPHABET[b & 31]).join("");
}

/** A code as shown to people: `XXXX-XXXX`. */
export function formatCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/**
 * Normalizes typed input: case-insensitive, hyphens and spaces optional, and
 * the look-alikes O→0, I/L→1 folded as Crockford does. `null` when it cannot be a code.
 */
export function normalizeCode(input: string): string | null {
  const code = input.toUpperCase().replace(/[\s-]/g, "").replaceAll("O", "0").replace(/[IL]/g, "1");
  return code.length === CODE_LENGTH && [...code].every((ch) => CODE_ALPHABET.includes(ch)) ? code : null;
}
