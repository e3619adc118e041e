/**
 * Shell integration: bash, zsh and fish are started with a small init (after
 * the user's own startup files) that reports the working directory (OSC 7
 * `file://host/path`) and prompt and command boundaries (OSC 133 A/B/C/D).
 * The runner strips those sequences from the output and tracks the shell's
 * state from them, so `pick-cwd` changes directory only at an empty prompt.
 *
 * Only the prompt mark (`OSC 133;A;coda=<nonce>`) carries a per-session
 * nonce: output that merely contains the sequences (`cat` of a file, a remote
 * shell over ssh) cannot make the runner believe a prompt is showing. An
 * OSC 7 counts only when our prompt mark follows it with nothing in between.
 * The nonce reaches the shell in {@linkcode NONCE_VARIABLE}, which the init
 * unsets at once, so the shell's children never see it; the init files hold
 * no secret.
 *
 * @module
 */
import { basename, join } from "node:path";
import { tmpdir } from "node:os";
import { OscFilter } from "./osc_filter.ts";

/** The shells that get the integration. */
export type IntegratedShellKind = "bash" | "zsh" | "fish";

/** The environment variable that hands the shell its nonce (unset by the init). */
export const NONCE_VARIABLE = "CODA_SHELL_NONCE";
/** The environment variable naming `coda-download`'s directory (`download_command.ts`), kept on `PATH` by the init. */
export const BIN_DIR_VARIABLE = "CODA_BIN_DIR";
/** The user's own `ZDOTDIR` while zsh reads ours (restored by the init). */
const USER_ZDOTDIR_VARIABLE = "CODA_USER_ZDOTDIR";

/**
 * The longest integration sequence held back while it is incomplete: an OSC 7
 * of a PATH_MAX (4096 bytes) path, every byte percent-encoded, and its framing.
 * Anything longer is not ours and passes through as output.
 */
const MAX_SEQUENCE_BYTES = 3 * 4096 + 256;

/** The shell kind of a shell executable, by name; `undefined` for any other shell. */
export function shellKind(file: string): IntegratedShellKind | undefined {
  const name = basename(file);
  return name === "bash" || name === "zsh" || name === "fish" ? name : undefined;
}

/** A shell command line with its integration. */
export interface IntegratedShell {
  kind: IntegratedShellKind;
  file: string;
  args: string[];
  /** The environment with the integration's variables added. */
  env: Record<string, string>;
  /** What the shell's prompt marks must carry. */
  nonce: string;
}

/**
 * `file` started as a login shell with the integration from `dir` (see
 * {@linkcode integrationDir}); `undefined` for a shell without one.
 */
export function integratedShell(
  file: string,
  env: Record<string, string>,
  dir: string,
  nonce: string = newNonce(),
): IntegratedShell | undefined {
  const kind = shellKind(file);
  if (!kind) return undefined;
  const withNonce = { ...env, [NONCE_VARIABLE]: nonce };
  switch (kind) {
    case "bash":
      // --rcfile is ignored by login shells, so the rc file loads the login files itself.
      return { kind, file, args: ["--rcfile", join(dir, "bash", "rc.bash"), "-i"], env: withNonce, nonce };
    case "zsh": {
      const zshEnv: Record<string, string> = { ...withNonce, ZDOTDIR: join(dir, "zsh") };
      if (env.ZDOTDIR !== undefined) zshEnv[USER_ZDOTDIR_VARIABLE] = env.ZDOTDIR;
      else delete zshEnv[USER_ZDOTDIR_VARIABLE];
      return { kind, file, args: ["-l"], env: zshEnv, nonce };
    }
    case "fish":
      return {
        kind,
        file,
        args: ["-l", "--init-command", `source ${fishQuote(join(dir, "fish", "init.fish"))}`],
        env: withNonce,
        nonce,
      };
  }
}

/** A fresh 128-bit nonce, hex. */
function newNonce(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** Quotes `text` for fish, whose single quotes, unlike POSIX ones, know two escapes (backslash-quote, backslash-backslash). */
export function fishQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** Where the prompt hook percent-encodes `$PWD` into `url` (bash and zsh share the loop). */
const URL_ENCODE_PWD = `local LC_ALL=C url= ch i
  for ((i = 0; i < \${#PWD}; i++)); do
    ch=\${PWD:\$i:1}
    case $ch in
      [A-Za-z0-9/._~-]) url+=$ch ;;
      *) builtin printf -v ch '%%%02X' "'$ch"; url+=$ch ;;
    esac
  done`;

/**
 * Puts `coda-download`'s directory back first on `PATH` (bash, zsh) after the user's startup files,
 * which may have reset it (Debian's `/etc/profile` does).
 */
const KEEP_BIN_DIR_ON_PATH = `# coda-download: the user's files may have reset PATH.
case ":$PATH:" in
  *":\${${BIN_DIR_VARIABLE}-}:"*) ;;
  *) if [ -n "\${${BIN_DIR_VARIABLE}-}" ]; then PATH="$${BIN_DIR_VARIABLE}:$PATH"; fi ;;
esac`;

/** The init files, by path under the integration directory. */
export const INIT_FILES: Readonly<Record<string, string>> = {
  "bash/rc.bash": `# Coda shell integration for bash, written by coda-runner (it holds no secret).
# bash reads this instead of ~/.bashrc, and as --rcfile it is no login shell: load what the
# login shell the runner starts otherwise would, or ~/.bashrc when there is no login file.
if [ -r /etc/profile ]; then . /etc/profile; fi
if [ -r ~/.bash_profile ]; then . ~/.bash_profile
elif [ -r ~/.bash_login ]; then . ~/.bash_login
elif [ -r ~/.profile ]; then . ~/.profile
elif [ -r ~/.bashrc ]; then . ~/.bashrc
fi
${KEEP_BIN_DIR_ON_PATH}

__coda_nonce=\${${NONCE_VARIABLE}-}
unset ${NONCE_VARIABLE}
export -n __coda_nonce
__coda_started=
__coda_precmd() {
  local coda_status=$?
  if [[ -n $__coda_started ]]; then builtin printf '\\e]133;D;%s\\a' "$coda_status"; fi
  __coda_started=1
  ${URL_ENCODE_PWD}
  builtin printf '\\e]7;file://%s%s\\a\\e]133;A;coda=%s\\a' "$HOSTNAME" "$url" "$__coda_nonce"
  if [[ \${PS1-} != *'133;B'* ]]; then PS1="\${PS1-}"'\\[\\e]133;B\\a\\]'; fi
  return "$coda_status"
}
if [[ \${PS0-} != *'133;C'* ]]; then PS0="\${PS0-}"'\\e]133;C\\a'; fi
# pick-cwd types its cd with a leading space: keep it out of the history.
case ":\${HISTCONTROL-}:" in
  *:ignorespace:* | *:ignoreboth:*) ;;
  *) HISTCONTROL="\${HISTCONTROL:+$HISTCONTROL:}ignorespace" ;;
esac
PROMPT_COMMAND=$'__coda_precmd\\n'"\${PROMPT_COMMAND-}"
`,
  // zsh reads every startup file from $ZDOTDIR: each of ours loads the user's from theirs.
  "zsh/.zshenv": `# Coda shell integration for zsh, written by coda-runner (it holds no secret).
__coda_zdotdir=$ZDOTDIR
__coda_had_zdotdir=\${${USER_ZDOTDIR_VARIABLE}+1}
__coda_user_zdotdir=\${${USER_ZDOTDIR_VARIABLE}-$HOME}
unset ${USER_ZDOTDIR_VARIABLE}
__coda_source() {
  ZDOTDIR=$__coda_user_zdotdir
  [[ -r $ZDOTDIR/$1 ]] && builtin source "$ZDOTDIR/$1"
  __coda_user_zdotdir=$ZDOTDIR
  ZDOTDIR=$__coda_zdotdir
}
__coda_source .zshenv
`,
  "zsh/.zprofile": `__coda_source .zprofile
`,
  "zsh/.zshrc": `__coda_source .zshrc
# From here on zsh reads the user's own files (.zlogin), and so do the shell's children.
if [[ -n $__coda_had_zdotdir || $__coda_user_zdotdir != "$HOME" ]]; then
  export ZDOTDIR=$__coda_user_zdotdir
else
  unset ZDOTDIR
fi
unfunction __coda_source
unset __coda_zdotdir __coda_had_zdotdir __coda_user_zdotdir
${KEEP_BIN_DIR_ON_PATH}

typeset -g __coda_nonce=\${${NONCE_VARIABLE}-}
unset ${NONCE_VARIABLE}
typeset -g __coda_started=
# pick-cwd types its cd with a leading space: keep it out of the history.
setopt HIST_IGNORE_SPACE
__coda_precmd() {
  local coda_status=$?
  emulate -L zsh
  if [[ -n $__coda_started ]]; then builtin printf '\\e]133;D;%s\\a' "$coda_status"; fi
  __coda_started=1
  ${URL_ENCODE_PWD}
  builtin printf '\\e]7;file://%s%s\\a\\e]133;A;coda=%s\\a' "$HOST" "$url" "$__coda_nonce"
  if [[ $PS1 != *'133;B'* ]]; then PS1+=$'%{\\e]133;B\\a%}'; fi
  return $coda_status
}
__coda_preexec() {
  builtin printf '\\e]133;C\\a'
}
precmd_functions=(__coda_precmd $precmd_functions)
preexec_functions+=(__coda_preexec)
`,
  // Ctrl-C at the prompt fires fish_cancel, not fish_prompt, yet ends with a fresh prompt.
  "fish/init.fish": `# Coda shell integration for fish, written by coda-runner (it holds no secret).
set -g __coda_nonce $${NONCE_VARIABLE}
set -e ${NONCE_VARIABLE}
# coda-download: the user's files may have reset PATH.
if set -q ${BIN_DIR_VARIABLE}; and not contains -- $${BIN_DIR_VARIABLE} $PATH
    set -gx PATH $${BIN_DIR_VARIABLE} $PATH
end
function __coda_prompt --on-event fish_prompt --on-event fish_cancel
    printf '\\e]7;file://%s%s\\a\\e]133;A;coda=%s\\a' $hostname (string escape --style=url -- $PWD) $__coda_nonce
end
function __coda_preexec --on-event fish_preexec
    printf '\\e]133;C\\a'
end
function __coda_postexec --on-event fish_postexec
    printf '\\e]133;D;%s\\a' $status
end
`,
};

/** The directories {@linkcode integrationDir} wrote, by base directory. */
const writtenDirs = new Map<string, string>();

/**
 * The directory holding {@linkcode INIT_FILES}, written once per process:
 * `coda-shell-<uid>` under `base` (`$XDG_RUNTIME_DIR`, else the temp
 * directory), 0700 and owned by this user. Any other state (a symlink,
 * another owner, looser modes) is not trusted: a fresh private temporary
 * directory is used instead.
 */
export function integrationDir(base: string = Deno.env.get("XDG_RUNTIME_DIR") || tmpdir()): string {
  const written = writtenDirs.get(base);
  if (written) return written;
  const uid = Deno.uid() ?? 0;
  let dir = join(base, `coda-shell-${uid}`);
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = Deno.lstatSync(dir);
  if (!info.isDirectory || info.isSymlink || info.uid !== uid || ((info.mode ?? 0) & 0o077) !== 0) {
    dir = Deno.makeTempDirSync({ prefix: "coda-shell-" });
  }
  for (const [path, text] of Object.entries(INIT_FILES)) {
    const target = join(dir, path);
    Deno.mkdirSync(join(target, ".."), { recursive: true, mode: 0o700 });
    // A private temporary name, then rename: a shell starting meanwhile never reads half a file. Random
    // too: test modules run as isolates of one process, and two writing one name lost the rename.
    const temporary = `${target}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    Deno.writeTextFileSync(temporary, text, { mode: 0o600 });
    Deno.renameSync(temporary, target);
  }
  writtenDirs.set(base, dir);
  return dir;
}

/** Where the shell stands: before its first prompt, at a prompt, or running a command. */
export type ShellState = "starting" | "prompt" | "running";

const decoder = new TextDecoder();
/** `]7;` and `]133;`: what follows ESC in an integration sequence (OSC 7, OSC 133), before its payload. */
const INTRODUCERS = [new TextEncoder().encode("]7;"), new TextEncoder().encode("]133;")];

/**
 * What a terminal sends by itself, answering a program's query: device
 * attributes, mode and keyboard-protocol reports, focus changes, OSC and DCS
 * replies. Nobody typed them. (A cursor position report is left out: it
 * reads like a modified F3 key.)
 */
const TERMINAL_REPLIES =
  // deno-lint-ignore no-control-regex -- escape sequences are what this matches
  /^(?:\x1b\[[?>][\d;]*c|\x1b\[\?[\d;]*u|\x1b\[\??[\d;]*\$y|\x1b\[[IO]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\)+$/;

/**
 * Strips the integration's sequences from a shell's output and tracks its
 * state from them: `prompt` after a verified prompt mark with no input
 * written since, `running` after a command mark until the next prompt. A
 * command mark needs no nonce: a forged one only makes the shell look busy,
 * which refuses rather than types.
 */
export class ShellTracker {
  /** Which shell this is. */
  readonly kind: IntegratedShellKind;
  readonly #nonce: string;
  readonly #onCwd: (path: string) => void;
  #state: ShellState = "starting";
  #typed = false;
  #typedAhead = false;
  #inputOutsidePrompt = false;
  readonly #marks = new OscFilter({
    introducers: INTRODUCERS,
    maxBytes: MAX_SEQUENCE_BYTES,
    onSequence: (found) =>
      this.#sequence(found.introducer === 0 ? "7" : "133", decoder.decode(found.payload)),
    onText: () => this.#ordinaryOutput(),
  });
  /** An OSC 7 waiting for the prompt mark that vouches for it. */
  #pendingCwd: string | undefined;
  readonly #waiters = new Set<(prompted: boolean) => void>();

  /** `onCwd`: the shell reported its directory at a prompt (every prompt, changed or not). */
  constructor(kind: IntegratedShellKind, nonce: string, onCwd: (path: string) => void) {
    this.kind = kind;
    this.#nonce = nonce;
    this.#onCwd = onCwd;
  }

  /** The shell's state. */
  get state(): ShellState {
    return this.#state;
  }

  /** Whether input was written since the last prompt mark: a line is being typed. */
  get typed(): boolean {
    return this.#typed;
  }

  /**
   * Whether input was written while the last command ran (or before the
   * first prompt): keys the command did not read are now at the prompt, and
   * nothing in the output tells them from keys it did read.
   */
  get typedAhead(): boolean {
    return this.#typedAhead;
  }

  /** Whether the end of the last read is held back (the start of a sequence). */
  get holding(): boolean {
    return this.#marks.holding;
  }

  /** `data` was written to the shell. */
  input(data: string): void {
    if (TERMINAL_REPLIES.test(data)) return;
    if (this.#state === "prompt") this.#typed = true;
    else this.#inputOutsidePrompt = true;
  }

  /**
   * One PTY read (bytes) in, the output to pass on out. The start of a
   * sequence at the end of a read is held for the next one (or
   * {@linkcode flush}). Output without an ESC passes through untouched.
   * `firstEscape`: where `data`'s first ESC is (−1: none), when the caller has looked already.
   */
  filter(data: Uint8Array, firstEscape?: number): Uint8Array {
    return this.#marks.filter(data, firstEscape);
  }

  /** Gives up what is held back: no sequence after all, it is output. */
  flush(): Uint8Array {
    return this.#marks.flush();
  }

  /** Resolves `true` at the next prompt mark, `false` after `timeoutMs` or on {@linkcode close}. */
  nextPrompt(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (prompted: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(prompted);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(done);
    });
  }

  /** The shell is gone: nobody waits for a prompt any more. */
  close(): void {
    for (const done of [...this.#waiters]) done(false);
  }

  /** Output between an OSC 7 and the prompt mark: that OSC 7 was not the prompt's. */
  #ordinaryOutput(): void {
    this.#pendingCwd = undefined;
  }

  #sequence(code: string, payload: string): void {
    if (code === "7") {
      this.#pendingCwd = parseFileUrl(payload);
      return;
    }
    const params = payload.split(";");
    if (params[0] === "C") this.#state = "running";
    if (params[0] !== "A" || params.at(-1) !== `coda=${this.#nonce}`) return;
    const cwd = this.#pendingCwd;
    this.#pendingCwd = undefined;
    this.#state = "prompt";
    this.#typed = false;
    this.#typedAhead = this.#inputOutsidePrompt;
    this.#inputOutsidePrompt = false;
    if (cwd !== undefined) this.#onCwd(cwd);
    for (const done of [...this.#waiters]) done(true);
  }
}

/** The path of a `file://host/path` URL (percent-decoded); `undefined` if it is not one. */
export function parseFileUrl(url: string): string | undefined {
  const match = /^file:\/\/[^/]*(\/.*)$/s.exec(url);
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}
