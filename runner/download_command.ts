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

const ESC = 0x1b;
const BEL = 0x07;
/** The longest download mark held back while incomplete: a PATH_MAX path in hex, the key, the framing. */
const MAX_MARK_BYTES = 2 * 4096 + 256;

/**
 * Strips download marks from a session's output and calls `onOffer` with the path of each carrying
 * `key`. The start of a mark at the end of a read is held for the next one (or {@linkcode flush}).
 */
export class DownloadMarks {
  readonly #key: string;
  readonly #onOffer: (path: string) => void;
  #carry: Uint8Array = new Uint8Array(0);

  constructor(key: string, onOffer: (path: string) => void) {
    this.#key = key;
    this.#onOffer = onOffer;
  }

  /** Whether the end of the last read is held back. */
  get holding(): boolean {
    return this.#carry.length > 0;
  }

  /** One piece of output in, the output to pass on out (output without an ESC untouched). */
  filter(data: Uint8Array): Uint8Array {
    let text = data;
    if (this.#carry.length > 0) {
      text = new Uint8Array(this.#carry.length + data.length);
      text.set(this.#carry);
      text.set(data, this.#carry.length);
      this.#carry = new Uint8Array(0);
    }
    let escape = text.indexOf(ESC);
    if (escape < 0) return text;
    const out: Uint8Array[] = [];
    let last = 0;
    let end = text.length;
    for (; escape >= 0; escape = text.indexOf(ESC, escape + 1)) {
      const found = markAt(text, escape);
      if (found === undefined) continue;
      if (found === "partial") {
        if (text.length - escape <= MAX_MARK_BYTES) {
          this.#carry = text.slice(escape);
          end = escape;
        }
        break;
      }
      out.push(text.subarray(last, escape));
      last = found.end;
      this.#mark(found.payload);
      escape = found.end - 1;
    }
    out.push(text.subarray(last, end));
    if (out.length === 1) return out[0];
    const joined = new Uint8Array(out.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of out) {
      joined.set(part, at);
      at += part.length;
    }
    return joined;
  }

  /** Gives up what is held back: no mark after all, it is output. */
  flush(): Uint8Array {
    const held = this.#carry;
    this.#carry = new Uint8Array(0);
    return held;
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

/**
 * The download mark starting at the ESC at `at`: its end and payload (after the prefix), `"partial"`
 * when the bytes run out while it could still be one, `undefined` when it is none.
 */
function markAt(data: Uint8Array, at: number): { end: number; payload: Uint8Array } | "partial" | undefined {
  let i = at + 1;
  for (let k = 0; k < MARK_PREFIX.length; k++, i++) {
    if (i === data.length) return "partial";
    if (data[i] !== MARK_PREFIX[k]) return undefined;
  }
  const start = i;
  while (i < data.length && data[i] !== BEL && data[i] !== ESC) i++;
  if (i === data.length || (data[i] === ESC && i + 1 === data.length)) return "partial";
  const end = data[i] === BEL ? i + 1 : data[i + 1] === 0x5c ? i + 2 : -1;
  if (end < 0) return undefined;
  return { end, payload: data.subarray(start, i) };
}
