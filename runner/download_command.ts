/**
 * `coda-download FILE…`, the command inside a session that offers files to its browser. The runner
 * writes the script once per process into the shell integration's directory and puts it on each
 * session's `PATH`; the script prints a private OSC sequence, the **download mark**, to the
 * terminal:
 *
 * ```
 * ESC ] 5379 ; coda-download ; <key> ; <absolute path, hex of its bytes> BEL
 * ```
 *
 * `<key>` is a per-session secret the shell and its children get in {@linkcode DOWNLOAD_KEY_VARIABLE}.
 * The session strips every download mark from its output ({@linkcode DownloadMarks}) and acts only on
 * one carrying its key: output that merely passes through the terminal (`cat` of a hostile file, a
 * remote host over ssh, which never sees the variable) cannot offer a file. It works in any shell,
 * with or without integration (`sh` too), but not inside tmux, which keeps unknown OSC sequences to
 * itself.
 *
 * @module
 */
import { join } from "node:path";
import { BIN_DIR_VARIABLE, integrationDir } from "./shell_integration.ts";
import { secretsEqual } from "@coda/relay/secrets";
import { OscFilter } from "./osc_filter.ts";

/** The environment variable holding a session's download key. */
export const DOWNLOAD_KEY_VARIABLE = "CODA_DOWNLOAD_KEY";
/** The OSC number of the download mark (not one a terminal knows). */
const MARK_OSC = "5379";
/** What every download mark starts with, after its ESC. */
const MARK_PREFIX = new TextEncoder().encode(`]${MARK_OSC};coda-download;`);

/** The script, POSIX sh. Paths go out as hex, so no byte of a file name can end or bend the sequence. */
export const DOWNLOAD_SCRIPT = `#!/bin/sh
# coda-download FILE...: offers each FILE to the browser of this Coda session as a download.
# Written by coda-runner; it holds no secret (the key is in the session's environment).
if [ "$#" -eq 0 ]; then echo "usage: coda-download FILE..." >&2; exit 2; fi
if [ -z "\${${DOWNLOAD_KEY_VARIABLE}-}" ]; then echo "coda-download: run it in a Coda terminal" >&2; exit 1; fi
status=0
for file in "$@"; do
  if [ ! -f "$file" ]; then echo "coda-download: $file: not a regular file" >&2; status=1; continue; fi
  if [ ! -r "$file" ]; then echo "coda-download: $file: not readable" >&2; status=1; continue; fi
  case $file in /*) path=$file ;; *) path=$(pwd)/$file ;; esac
  hex=$(printf '%s' "$path" | od -An -v -tx1 | tr -d ' \\n')
  if ! printf '\\033]${MARK_OSC};coda-download;%s;%s\\007' "$${DOWNLOAD_KEY_VARIABLE}" "$hex" 2>/dev/null >/dev/tty; then
    echo "coda-download: no terminal to offer $file through" >&2; exit 1
  fi
  echo "coda-download: offered $file to your browser"
done
exit $status
`;

/** The directories {@linkcode downloadCommandDir} wrote, by integration directory. */
const writtenDirs = new Map<string, string>();

/**
 * The directory holding `coda-download` (`bin/` under the integration directory, 0700), written
 * once per process; `undefined` when it cannot be written (sessions then start without the command).
 */
export function downloadCommandDir(base?: string): string | undefined {
  try {
    const root = integrationDir(base);
    const written = writtenDirs.get(root);
    if (written) return written;
    const dir = join(root, "bin");
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const target = join(dir, "coda-download");
    // A temporary name of this call's own, then rename: a shell running it meanwhile never reads half a
    // script, and sessions starting at once in several isolates of one process never share the name.
    const temporary = `${target}.${Deno.pid}.${newDownloadKey().slice(0, 8)}.tmp`;
    Deno.writeTextFileSync(temporary, DOWNLOAD_SCRIPT, { mode: 0o700 });
    Deno.chmodSync(temporary, 0o700);
    Deno.renameSync(temporary, target);
    writtenDirs.set(root, dir);
    return dir;
  } catch {
    return undefined;
  }
}

/** A fresh 128-bit download key, hex. */
export function newDownloadKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/**
 * The variables a session's shell gets for `coda-download`: its key, the script's directory, and
 * that directory first on `PATH`. A login shell whose profile resets `PATH` loses it there; the
 * shell integration (bash, zsh, fish) puts it back after the user's files, and `"$CODA_BIN_DIR/coda-download"`
 * works in any shell.
 */
export function downloadCommandEnv(
  env: Record<string, string>,
  key: string,
  dir: string,
): Record<string, string> {
  return {
    ...env,
    [DOWNLOAD_KEY_VARIABLE]: key,
    [BIN_DIR_VARIABLE]: dir,
    PATH: env.PATH ? `${dir}:${env.PATH}` : dir,
  };
}

/** The longest download mark held back while incomplete: a PATH_MAX path in hex, the key, the framing. */
const MAX_MARK_BYTES = 2 * 4096 + 256;

/**
 * Strips download marks from a session's output and calls `onOffer` with the path of each carrying
 * `key`. The start of a mark at the end of a read is held for the next one (or {@linkcode flush}).
 */
export class DownloadMarks {
  readonly #key: string;
  readonly #onOffer: (path: string) => void;
  readonly #marks: OscFilter;

  constructor(key: string, onOffer: (path: string) => void) {
    this.#key = key;
    this.#onOffer = onOffer;
    this.#marks = new OscFilter({
      introducers: [MARK_PREFIX],
      maxBytes: MAX_MARK_BYTES,
      onSequence: (found) => this.#mark(found.payload),
    });
  }

  /** Whether the end of the last read is held back. */
  get holding(): boolean {
    return this.#marks.holding;
  }

  /** One piece of output in, the output to pass on out (output without an ESC untouched); see {@linkcode OscFilter.filter}. */
  filter(data: Uint8Array, firstEscape?: number): Uint8Array {
    return this.#marks.filter(data, firstEscape);
  }

  /** Gives up what is held back: no mark after all, it is output. */
  flush(): Uint8Array {
    return this.#marks.flush();
  }

  /** `<key>;<hex path>`: an offer when the key is this session's and the path decodes. */
  #mark(payload: Uint8Array): void {
    const [key, hex, ...rest] = new TextDecoder().decode(payload).split(";");
    if (rest.length > 0 || hex === undefined || !secretsEqual(key, this.#key)) return;
    if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(hex)) return;
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    this.#onOffer(new TextDecoder().decode(bytes));
  }
}
