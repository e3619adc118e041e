/**
 * Recorded terminal output: appended by runners in pieces, stored under KV's
 * 64 KiB value limit, read back as an asciicast v2 file.
 *
 * Keys:
 * - `["logs", sessionId]` → {@linkcode LogMeta}
 * - `["log_chunks", sessionId, seq]` → {@linkcode LogEvent}[] (each value at most ~48 KiB)
 * - `["logs_by_user", userId, sessionId]` → `true`
 *
 * @module
 */
import { ApiError } from "./http.ts";
import { getDevSession } from "./devmode_sessions.ts";

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

/** A recording as listed to its owner. */
export interface LogSummary {
  sessionId: string;
  /** The idea the session was opened for, when the session is still on record. */
  ideaId: string | null;
  startedAt: number;
  bytes: number;
}

/** UTF-16 code units of output per KV value: at most 2 bytes each, well under 64 KiB with overhead. */
export const CHUNK_CODE_UNITS = 24_000;
/** Most output one session can record. */
export const MAX_RECORDING_BYTES = 64 * 1024 * 1024;
/** Chunk values written per atomic operation (KV caps the size of one operation). */
const VALUES_PER_COMMIT = 8;

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
 * Appends recorded output to a session's log. The session must belong to the
 * runner token's user (403) and exist (404).
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
  },
): Promise<{ bytes: number }> {
  const session = await getDevSession(kv, input.sessionId);
  if (!session) throw new ApiError(404, "session not found");
  if (session.userId !== input.userId) throw new ApiError(403, "this session belongs to someone else");
  const events: LogEvent[] = input.chunks.filter((c) => c.data.length > 0).map((c) => [c.t, c.data]);
  if (events.length === 0) return { bytes: 0 };
  const values = packEvents(events);
  const added = events.reduce((sum, [, data]) => sum + new TextEncoder().encode(data).length, 0);
  let firstSeq: number;
  for (;;) {
    const entry = await kv.get<LogMeta>(["logs", input.sessionId]);
    const previous = entry.value;
    if (previous && previous.userId !== input.userId) {
      throw new ApiError(403, "this session belongs to someone else");
    }
    const bytes = (previous?.bytes ?? 0) + added;
    if (bytes > MAX_RECORDING_BYTES) throw new ApiError(413, "recording limit reached for this session");
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
      .check(entry)
      .set(["logs", input.sessionId], meta)
      .set(["logs_by_user", input.userId, input.sessionId], true)
      .commit();
    if (result.ok) {
      firstSeq = previous?.nextSeq ?? 0;
      break;
    }
  }
  for (let i = 0; i < values.length; i += VALUES_PER_COMMIT) {
    const op = kv.atomic();
    values.slice(i, i + VALUES_PER_COMMIT).forEach((value, j) => {
      op.set(["log_chunks", input.sessionId, firstSeq + i + j], value);
    });
    await op.commit();
  }
  return { bytes: added };
}

/** Reads a recording's bookkeeping. */
export async function getLogMeta(kv: Deno.Kv, sessionId: string): Promise<LogMeta | null> {
  return (await kv.get<LogMeta>(["logs", sessionId])).value;
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
