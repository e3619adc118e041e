/**
 * Watch-only shares of a terminal session: its owner lets named accounts, or anyone holding a
 * link, watch it through the relay (which forwards nothing a viewer sends) until the share expires
 * or is revoked.
 *
 * Keys:
 * - `["shares", shareId]` → {@linkcode ShareRecord};
 * - `["shares_by_session", sessionId, shareId]` → `true`;
 * - `["share_viewers", shareId, clientId]` → {@linkcode ViewerRecord} while a viewer's link is open
 *   (as the relay reports it; 12 h at most, should a relay vanish without saying);
 * - `SHARE_EPOCH_KEY` → `Deno.KvU64`, bumped on every revocation (relays re-check their viewers).
 *
 * A link share's secret is never stored, only its SHA-256: it lives in the link's fragment, which
 * browsers never send, so no server log holds it.
 *
 * @module
 */
import { getManyChunked, SHARE_EPOCH_KEY } from "@coda/relay";
import type { ViewerReport } from "@coda/relay/backend";
import { secretsEqual } from "@coda/relay/secrets";
import { randomId } from "./crypto.ts";
import type { DevSession } from "./devmode_sessions.ts";
import { type Failure, failure, type Result, success } from "./result.ts";

/** Who may watch: named accounts (by email), or anyone holding the link. */
export type ShareAudience = "accounts" | "link";

/** A share as stored. */
export interface ShareRecord {
  shareId: string;
  ownerId: string;
  sessionId: string;
  /** The runner the session runs on, as the session record says (the viewer's token names it). */
  runnerId: string | null;
  audience: ShareAudience;
  /** Normalized emails of the accounts that may watch (`accounts` only). */
  emails: string[];
  /** SHA-256 (hex) of the link's secret (`link` only). */
  secretHash: string | null;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** A viewer watching now. */
export interface ViewerRecord {
  /** The invited account's email; null for anyone with the link. */
  viewer: string | null;
  since: number;
}

/** Longest a viewer record outlives a relay that never reported the viewer gone. */
const VIEWER_RECORD_MS = 12 * 60 * 60 * 1000;

/** Why a share cannot be watched. */
export type OpenShareFailure = Failure<"share_not_found" | "share_expired">;

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Creates a share of `session` (the caller checked it is the owner's); resolves it and a link's secret. */
export async function createShare(kv: Deno.Kv, input: {
  session: DevSession;
  audience: ShareAudience;
  emails: string[];
  minutes: number;
  now: number;
}): Promise<{ share: ShareRecord; secret: string | null }> {
  const secret = input.audience === "link" ? randomId() + randomId() : null;
  const share: ShareRecord = {
    shareId: randomId(),
    ownerId: input.session.userId,
    sessionId: input.session.sessionId,
    runnerId: input.session.runnerId ?? input.session.servedBy ?? null,
    audience: input.audience,
    emails: input.audience === "accounts" ? [...new Set(input.emails)] : [],
    secretHash: secret === null ? null : await sha256Hex(secret),
    createdAt: input.now,
    expiresAt: input.now + input.minutes * 60_000,
    revokedAt: null,
  };
  const expireIn = share.expiresAt - input.now;
  await kv.atomic()
    .set(["shares", share.shareId], share, { expireIn })
    .set(["shares_by_session", share.sessionId, share.shareId], true, { expireIn })
    .commit();
  return { share, secret };
}

/** `share` if it can be watched now: it exists, is not revoked and has not expired. */
function watchable(share: ShareRecord | null, now: number): Result<ShareRecord, OpenShareFailure> {
  if (!share || share.revokedAt !== null) return failure("share_not_found");
  if (share.expiresAt <= now) return failure("share_expired");
  return success(share);
}

/** A share that can be watched now. */
export async function openShare(
  kv: Deno.Kv,
  shareId: string,
  now: number,
): Promise<Result<ShareRecord, OpenShareFailure>> {
  return watchable((await kv.get<ShareRecord>(["shares", shareId])).value, now);
}

/** Whether `secret` is the link's. */
export async function secretMatches(share: ShareRecord, secret: string): Promise<boolean> {
  return share.secretHash !== null && secretsEqual(await sha256Hex(secret), share.secretHash);
}

/** The live shares of a session, each with who watches it now. */
export async function listSessionShares(
  kv: Deno.Kv,
  sessionId: string,
  now: number,
): Promise<{ share: ShareRecord; viewers: ViewerRecord[] }[]> {
  const listed: { share: ShareRecord; viewers: ViewerRecord[] }[] = [];
  for await (const entry of kv.list({ prefix: ["shares_by_session", sessionId] })) {
    const opened = await openShare(kv, entry.key[2] as string, now);
    if (!opened.ok) continue;
    const viewers: ViewerRecord[] = [];
    for await (const viewer of kv.list<ViewerRecord>({ prefix: ["share_viewers", opened.value.shareId] })) {
      viewers.push(viewer.value);
    }
    listed.push({ share: opened.value, viewers });
  }
  // Oldest first; shares made in the same millisecond in id order, so the list does not shuffle.
  return listed.sort((a, b) =>
    a.share.createdAt - b.share.createdAt || (a.share.shareId < b.share.shareId ? -1 : 1)
  );
}

/** Revokes a share of `ownerId`; relays close its viewers when they see the epoch move. */
export async function revokeShare(
  kv: Deno.Kv,
  shareId: string,
  ownerId: string,
  now: number,
): Promise<Result<ShareRecord, Failure<"share_not_found">>> {
  const entry = await kv.get<ShareRecord>(["shares", shareId]);
  // Another user's share is as unknown as a missing one: ids are not probed.
  if (!entry.value || entry.value.ownerId !== ownerId || entry.value.revokedAt !== null) {
    return failure("share_not_found");
  }
  const revoked = { ...entry.value, revokedAt: now };
  const result = await kv.atomic()
    .check(entry)
    .set(["shares", shareId], revoked, { expireIn: Math.max(1000, revoked.expiresAt - now) })
    .delete(["shares_by_session", revoked.sessionId, shareId])
    .sum(SHARE_EPOCH_KEY, 1n)
    .commit();
  if (!result.ok) return failure("share_not_found");
  return success(revoked);
}

/** Of `shareIds`, those that can be watched now (the relay's check). */
export async function liveShareIds(
  kv: Deno.Kv,
  shareIds: readonly string[],
  now: number,
): Promise<Set<string>> {
  const entries = await getManyChunked<ShareRecord>(kv, shareIds.map((shareId) => ["shares", shareId]));
  return new Set(shareIds.filter((_, i) => watchable(entries[i].value, now).ok));
}

/** Applies a relay's report of a viewer coming or going. */
export async function recordViewer(kv: Deno.Kv, report: ViewerReport, now: number): Promise<void> {
  const key = ["share_viewers", report.shareId, report.clientId];
  if (!report.online) return await kv.delete(key);
  const record: ViewerRecord = { viewer: report.viewer ?? null, since: now };
  await kv.set(key, record, { expireIn: VIEWER_RECORD_MS });
}
