/**
 * Recorded terminal output: appended by runners in pieces, stored under KV's
 * 64 KiB value limit, read back as an asciicast v2 file.
 *
 * Keys:
 * - `["logs", sessionId]` → {@linkcode LogMeta}
 * - `["log_chunks", sessionId, seq]` → {@linkcode LogEvent}[] (each value at most ~48 KiB)
 * - `["logs_by_user", userId, sessionId]` → `true`
 * - `["log_bytes_by_user", userId]` → number: bytes the user's recordings hold, updated in the
 *   same atomic operation as each recording's {@linkcode LogMeta}
 * - `["logs_deleted", sessionId]` → `true`: the owner deleted this session's recording; nothing
 *   more is recorded for it
 *
 * @module
 */
import { findOwnSession, getDevSession, type OwnSessionFailure } from "./devmode_sessions.ts";
import { type Failure, failure, type Limited, type Result, success } from "./result.ts";
import type { LogSummary } from "./contract.ts";

/** One recorded output: `[t, data]`, `t` in ms since the epoch. */
export type LogEvent = [number, string];

/** A recording's bookkeeping. */
export interface LogMeta {
  sessionId: string;
  userId: string;
  runnerId: string;
  /** `t` of the first recorded output (ms since the epoch). */
  startedAt: number;
  /** UTF-8 bytes of output recorded. */
  bytes: number;
  /** Next chunk sequence number. */
  nextSeq: number;
  cols: number | null;
  rows: number | null;
}

/** UTF-16 code units of output per KV value: at most 2 bytes each, well under 64 KiB with overhead. */
export const CHUNK_CODE_UNITS = 24_000;
/** Most output one session can record. */
export const MAX_RECORDING_BYTES = 64 * 1024 * 1024;
/**
 * Default for the most output one user's recordings may hold together
 * (`DEVMODE_RECORDING_BYTES_PER_USER`): four full recordings. Without it a
 * script opening sessions could store 64 MiB for each of them.
 */
export const DEFAULT_RECORDING_BYTES_PER_USER = 256 * 1024 * 1024;
/** `Retry-After` of a refusal for a full recording store: the runner's recorder backs off at least this long. */
export const RECORDING_FULL_RETRY_MS = 5 * 60 * 1000;
/**
 * Why {@linkcode appendLog} refused: `recording_full` when the session's recording is at
 * {@linkcode MAX_RECORDING_BYTES}, `storage_full` when the user's recordings are at their limit
 * (`bytesPerUser`, the limit that refused).
 */
export type AppendLogFailure =
  | OwnSessionFailure
  | Failure<"recording_deleted" | "recording_full">
  | (Limited<"storage_full"> & { bytesPerUser: number });

/** Chunk values written per atomic operation (KV caps the size of one operation). */
const VALUES_PER_COMMIT = 8;
/** Chunk keys deleted per atomic operation (KV caps the mutations of one operation). */
const DELETES_PER_COMMIT = 100;

/** Splits `data` into pieces of at most `max` code units without cutting a surrogate pair. */
function splitData(data: string, max: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (data.length - start > max) {
    let end = start + max;
    const last = data.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--;
    pieces.push(data.slice(start, end));
    start = end;
  }
  pieces.push(data.slice(start));
  return pieces;
}

/** Packs events into KV-sized values. */
export function packEvents(events: LogEvent[], max = CHUNK_CODE_UNITS): LogEvent[][] {
  const values: LogEvent[][] = [];
  let current: LogEvent[] = [];
  let size = 0;
  for (const [t, data] of events) {
    for (const piece of splitData(data, max)) {
      if (size + piece.length > max && current.length > 0) {
        values.push(current);
        current = [];
        size = 0;
      }
      current.push([t, piece]);
      size += piece.length + 16;
    }
  }
  if (current.length > 0) values.push(current);
  return values;
}

/**
 * Appends recorded output to a session's log. The session must exist and
 * belong to the runner token's user; the recording stays within
 * {@linkcode MAX_RECORDING_BYTES} and all of the user's recordings within
 * `bytesPerUser`, checked and counted in one atomic operation.
 */
export async function appendLog(
  kv: Deno.Kv,
  input: {
    sessionId: string;
    userId: string;
    runnerId: string;
    chunks: { t: number; data: string }[];
    cols?: number;
    rows?: number;
    /** Most bytes all of the user's recordings may hold together. */
    bytesPerUser: number;
  },
): Promise<Result<{ bytes: number }, AppendLogFailure>> {
  const own = await findOwnSession(kv, input.sessionId, input.userId);
  if (!own.ok) return own;
  const events: LogEvent[] = input.chunks.filter((c) => c.data.length > 0).map((c) => [c.t, c.data]);
  if (events.length === 0) return success({ bytes: 0 });
  const values = packEvents(events);
  const added = events.reduce((sum, [, data]) => sum + new TextEncoder().encode(data).length, 0);
  const totalKey = ["log_bytes_by_user", input.userId];
  const deletedKey = ["logs_deleted", input.sessionId];
  let firstSeq: number;
  for (;;) {
    const [entry, total, deleted] = await kv.getMany<[LogMeta, number, true]>([
      ["logs", input.sessionId],
      totalKey,
      deletedKey,
    ]);
    if (deleted.value) return failure("recording_deleted");
    const previous = entry.value;
    if (previous && previous.userId !== input.userId) return failure("session_not_yours");
    const bytes = (previous?.bytes ?? 0) + added;
    if (bytes > MAX_RECORDING_BYTES) return failure("recording_full");
    const userBytes = (total.value ?? 0) + added;
    if (userBytes > input.bytesPerUser) {
      // Space comes back only when the user deletes recordings; a retry is cheap to refuse again.
      return { ...failure("storage_full", RECORDING_FULL_RETRY_MS), bytesPerUser: input.bytesPerUser };
    }
    const meta: LogMeta = {
      sessionId: input.sessionId,
      userId: input.userId,
      runnerId: input.runnerId,
      startedAt: previous?.startedAt ?? events.reduce((min, [t]) => Math.min(min, t), Infinity),
      bytes,
      nextSeq: (previous?.nextSeq ?? 0) + values.length,
      cols: input.cols ?? previous?.cols ?? null,
      rows: input.rows ?? previous?.rows ?? null,
    };
    const result = await kv.atomic()
      .check(entry, total, deleted)
      .set(["logs", input.sessionId], meta)
      .set(totalKey, userBytes)
      .set(["logs_by_user", input.userId, input.sessionId], true)
      .commit();
    if (result.ok) {
      firstSeq = previous?.nextSeq ?? 0;
      break;
    }
  }
  for (let i = 0; i < values.length; i += VALUES_PER_COMMIT) {
    // A deletion committed meanwhile sweeps only the chunks written before it: later ones must not land.
    const op = kv.atomic().check({ key: deletedKey, versionstamp: null });
    values.slice(i, i + VALUES_PER_COMMIT).forEach((value, j) => {
      op.set(["log_chunks", input.sessionId, firstSeq + i + j], value);
    });
    await op.commit();
  }
  return success({ bytes: added });
}

/**
 * Deletes a session's recording and gives its bytes back to the owner's
 * total. Nothing more is recorded for the session afterwards (`recording_deleted`),
 * so a batch in flight cannot leave output behind: its chunk writes check the
 * deletion mark, and the sweep runs after the mark is committed.
 */
export async function deleteLog(kv: Deno.Kv, meta: LogMeta): Promise<void> {
  const totalKey = ["log_bytes_by_user", meta.userId];
  for (;;) {
    const [entry, total] = await kv.getMany<[LogMeta, number]>([["logs", meta.sessionId], totalKey]);
    if (!entry.value) return;
    const result = await kv.atomic()
      .check(entry, total)
      .delete(["logs", meta.sessionId])
      .delete(["logs_by_user", meta.userId, meta.sessionId])
      // Recordings stored before the total was kept were never counted in it.
      .set(totalKey, Math.max(0, (total.value ?? 0) - entry.value.bytes))
      .set(["logs_deleted", meta.sessionId], true)
      .commit();
    if (result.ok) break;
  }
  let keys: Deno.KvKey[] = [];
  for await (const item of kv.list({ prefix: ["log_chunks", meta.sessionId] })) {
    keys.push(item.key);
    if (keys.length === DELETES_PER_COMMIT) {
      await deleteKeys(kv, keys);
      keys = [];
    }
  }
  await deleteKeys(kv, keys);
}

async function deleteKeys(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<void> {
  if (keys.length === 0) return;
  const op = kv.atomic();
  for (const key of keys) op.delete(key);
  await op.commit();
}

/** Reads a recording's bookkeeping. */
export async function getLogMeta(kv: Deno.Kv, sessionId: string): Promise<LogMeta | null> {
  return (await kv.get<LogMeta>(["logs", sessionId])).value;
}

/** Why {@linkcode findRecording} refused. */
export type RecordingFailure = OwnSessionFailure | Failure<"no_recording">;

/** The recording of one of `userId`'s sessions, to download: the session must still be on record. */
export async function findRecording(
  kv: Deno.Kv,
  sessionId: string,
  userId: string,
): Promise<Result<LogMeta, RecordingFailure>> {
  const own = await findOwnSession(kv, sessionId, userId);
  if (!own.ok) return own;
  const meta = await getLogMeta(kv, sessionId);
  return meta ? success(meta) : failure("no_recording");
}

/** Why {@linkcode findOwnLog} refused. */
export type OwnLogFailure = Failure<"no_recording" | "session_not_yours">;

/** `userId`'s recording of a session, to delete: ownership is the recording's, whether or not the session is on record. */
export async function findOwnLog(
  kv: Deno.Kv,
  sessionId: string,
  userId: string,
): Promise<Result<LogMeta, OwnLogFailure>> {
  const meta = await getLogMeta(kv, sessionId);
  if (!meta) return failure("no_recording");
  if (meta.userId !== userId) return failure("session_not_yours");
  return success(meta);
}

/** The user's recordings, newest first. */
export async function listLogs(kv: Deno.Kv, userId: string): Promise<LogSummary[]> {
  const summaries: LogSummary[] = [];
  for await (const item of kv.list({ prefix: ["logs_by_user", userId] })) {
    const meta = await getLogMeta(kv, item.key[2] as string);
    if (!meta) continue;
    const session = await getDevSession(kv, meta.sessionId);
    summaries.push({
      sessionId: meta.sessionId,
      ideaId: session?.ideaId ?? null,
      startedAt: meta.startedAt,
      bytes: meta.bytes,
    });
  }
  return summaries.sort((a, b) => b.startedAt - a.startedAt);
}

/** The asciicast v2 file of a recording, as a stream of lines. */
export function asciicastStream(kv: Deno.Kv, meta: LogMeta): ReadableStream<Uint8Array> {
  async function* lines(): AsyncGenerator<string> {
    const header = {
      version: 2,
      width: meta.cols ?? 80,
      height: meta.rows ?? 24,
      timestamp: Math.floor(meta.startedAt / 1000),
    };
    yield JSON.stringify(header) + "\n";
    for await (const item of kv.list<LogEvent[]>({ prefix: ["log_chunks", meta.sessionId] })) {
      let text = "";
      for (const [t, data] of item.value) {
        const seconds = Math.max(0, Math.round(t - meta.startedAt)) / 1000;
        text += JSON.stringify([seconds, "o", data]) + "\n";
      }
      yield text;
    }
  }
  return ReadableStream.from(lines()).pipeThrough(new TextEncoderStream());
}
