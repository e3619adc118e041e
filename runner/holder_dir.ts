/**
 * The runner's runtime directory: where session holders (`holder.ts`) keep
 * their sockets. Private to the user (0700), as the sockets are (0600): a
 * socket there is a shell.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * The longest Unix socket path every OS takes (macOS: 104 bytes with the
 * terminating NUL; Linux: 108).
 */
export const MAX_SOCKET_PATH_BYTES = 103;

/** A holder's socket: the spare's, until a session is assigned, then the session's. */
export interface HolderSocket {
  path: string;
  /** A spare's (no session yet). */
  spare: boolean;
}

const SPARE_PREFIX = "spare-";
const SOCKET_SUFFIX = ".sock";

/**
 * The socket of the holder of `sessionId`, named by a digest of the id: a session id may take 64
 * characters, more than a socket path has room for under most directories.
 */
export function holderSocketPath(dir: string, sessionId: string): string {
  const name = createHash("sha256").update(sessionId).digest("hex").slice(0, 16);
  return join(dir, `${name}${SOCKET_SUFFIX}`);
}

/** The socket of a spare holder with process id `pid`. */
export function spareSocketPath(dir: string, pid: number): string {
  return join(dir, `${SPARE_PREFIX}${pid}${SOCKET_SUFFIX}`);
}

/**
 * Creates `dir` (0700) if needed and checks it is a directory of this user
 * that nobody else can enter, and short enough for its sockets (a 64-character
 * session id). Throws an `Error` saying why not.
 */
export async function ensureRuntimeDir(dir: string): Promise<void> {
  const longest = new TextEncoder().encode(spareSocketPath(dir, 2 ** 32)).length;
  if (longest > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `the runtime directory ${dir} is too long for Unix sockets; set CODA_RUNTIME_DIR to a shorter one`,
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await stat(dir);
  if (!info.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (Deno.uid() !== null && info.uid !== Deno.uid()) {
    throw new Error(`the runtime directory ${dir} belongs to another user`);
  }
  if ((info.mode & 0o077) !== 0) {
    throw new Error(
      `the runtime directory ${dir} is open to other users (mode ${(info.mode & 0o777).toString(8)}); ` +
        `run: chmod 700 ${dir}`,
    );
  }
}

/** The holder sockets in `dir` (none when it does not exist). */
export async function listHolderSockets(dir: string): Promise<HolderSocket[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((name) => name.endsWith(SOCKET_SUFFIX)).sort().map((name) => ({
    path: join(dir, name),
    spare: name.startsWith(SPARE_PREFIX),
  }));
}
