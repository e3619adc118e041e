/**
 * Comparing secrets (relay and app secrets, access and metrics tokens) without
 * leaking them through timing: the one implementation every part uses.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether `given` equals `expected`, in constant time. Both are hashed first,
 * so neither the content nor the length of the expected secret leaks.
 */
export function secretsEqual(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
