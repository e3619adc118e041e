/**
 * Password hashing: PBKDF2-SHA256 with 600,000 iterations and a 16-byte salt,
 * via WebCrypto. Stored as `pbkdf2-sha256$<iterations>$<salt>$<hash>`.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { base64url, fromBase64url } from "./crypto.ts";

/** PBKDF2 iterations for new hashes (OWASP 2023 minimum for PBKDF2-HMAC-SHA256). */
export const PBKDF2_ITERATIONS = 600_000;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const SCHEME = "pbkdf2-sha256";

async function derive(
  password: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    HASH_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, PBKDF2_ITERATIONS);
  return `${SCHEME}$${PBKDF2_ITERATIONS}$${base64url(salt)}$${base64url(hash)}`;
}

/** Checks a password against a stored hash in constant time; `false` for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, iterationsText, saltText, hashText] = stored.split("$");
  const iterations = Number(iterationsText);
  if (scheme !== SCHEME || !Number.isSafeInteger(iterations) || iterations < 1 || !saltText || !hashText) {
    return false;
  }
  let salt: Uint8Array<ArrayBuffer>;
  let expected: Uint8Array;
  try {
    salt = fromBase64url(saltText);
    expected = fromBase64url(hashText);
  } catch {
    return false;
  }
  const derived = await derive(password, salt, iterations);
  // node:crypto's compare throws on different lengths; a stored hash of another length simply does not match.
  return derived.length === expected.length && timingSafeEqual(derived, expected);
}

let dummyHash: Promise<string> | undefined;

/**
 * A hash of a random password, checked against when an email is unknown so a
 * failed login takes as long whether or not the account exists.
 */
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(base64url(crypto.getRandomValues(new Uint8Array(16))));
  return dummyHash;
}
