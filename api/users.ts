/**
 * User accounts in KV.
 *
 * Keys: `["users", userId]` → {@linkcode UserRecord}; `["users_by_email", email]`
 * → userId; `["meta", "has_user"]` is set by the first sign-up (closed sign-up).
 *
 * @module
 */
import { randomId } from "./crypto.ts";
import { hashPassword } from "./passwords.ts";

/** A stored account. */
export interface UserRecord {
  id: string;
  /** Lower-cased, trimmed. */
  email: string;
  passwordHash: string;
  createdAt: number;
}

/** Why {@linkcode createUser} refused. */
export type CreateUserFailure = "email-taken" | "signup-closed";

/** Normalizes an email for storage and lookup. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Reads a user by id. */
export async function getUser(kv: Deno.Kv, userId: string): Promise<UserRecord | null> {
  return (await kv.get<UserRecord>(["users", userId])).value;
}

/** Reads a user by (normalized) email. */
export async function findUserByEmail(kv: Deno.Kv, email: string): Promise<UserRecord | null> {
  const id = (await kv.get<string>(["users_by_email", normalizeEmail(email)])).value;
  return id ? await getUser(kv, id) : null;
}

/**
 * Creates an account. With `signupClosed`, only the very first account can be
 * created; both that rule and email uniqueness hold under concurrency (KV atomic checks).
 */
export async function createUser(
  kv: Deno.Kv,
  input: { email: string; password: string; now: number; signupClosed: boolean },
): Promise<UserRecord | CreateUserFailure> {
  const email = normalizeEmail(input.email);
  const user: UserRecord = {
    id: randomId(),
    email,
    passwordHash: await hashPassword(input.password),
    createdAt: input.now,
  };
  const op = kv.atomic()
    .check({ key: ["users_by_email", email], versionstamp: null })
    .set(["users", user.id], user)
    .set(["users_by_email", email], user.id)
    .set(["meta", "has_user"], true);
  if (input.signupClosed) op.check({ key: ["meta", "has_user"], versionstamp: null });
  if ((await op.commit()).ok) return user;
  if ((await kv.get(["users_by_email", email])).versionstamp !== null) return "email-taken";
  return "signup-closed";
}
