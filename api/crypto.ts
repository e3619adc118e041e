/**
 * Small cryptographic helpers: unpadded base64url, random ids and SHA-256
 * digests. Constant-time comparison is `secretsEqual` in relay/secrets.ts.
 *
 * @module
 */

/** Encodes bytes as unpadded base64url. */
export function base64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Decodes unpadded base64url; throws on anything else. */
export function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  // fromBase64 tolerates padding and ASCII whitespace; stored values never carry either.
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError("not base64url");
  return Uint8Array.fromBase64(text, { alphabet: "base64url" });
}

/** A random id of `bytes` random bytes as base64url (16 bytes → 22 characters). */
export function randomId(bytes = 16): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** SHA-256 of a UTF-8 string, as lowercase hex. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
