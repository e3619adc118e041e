/**
 * The data directory holds password hashes, tokens' records and recorded
 * terminal output: only the account running the app may read it.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";

/** The KV file's path when `kvUrl` names a local file (not `:memory:` or a KV Connect URL). */
function kvFile(kvUrl: string): string | null {
  if (kvUrl === ":memory:" || /^[a-z][a-z0-9+.-]*:\/\//i.test(kvUrl)) return null;
  return isAbsolute(kvUrl) ? kvUrl : resolve(kvUrl);
}

/** Sets `path`'s permission bits to `mode` when they differ; returns whether it changed them. */
function tighten(path: string, mode: number): boolean {
  let current: number;
  try {
    current = (Deno.statSync(path).mode ?? 0) & 0o777;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  if (current === mode) return false;
  Deno.chmodSync(path, mode);
  return true;
}

/**
 * Makes the data directory 0700 and the KV file with its `-wal` and `-shm`
 * 0600, creating the KV file first so SQLite gives its side files the same
 * mode. Returns a notice for each existing path it had to tighten. Nothing
 * to do on Windows, which has no mode bits.
 */
export function secureDataDir(dataDir: string, kvUrl: string): string[] {
  if (Deno.build.os === "windows") return [];
  const notices: string[] = [];
  if (tighten(dataDir, 0o700)) notices.push(`${dataDir} was readable by others; it is now 0700`);
  const file = kvFile(kvUrl);
  if (file === null) return notices;
  try {
    Deno.writeFileSync(file, new Uint8Array(), { createNew: true, mode: 0o600 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (tighten(path, 0o600)) notices.push(`${path} was readable by others; it is now 0600`);
  }
  return notices;
}
