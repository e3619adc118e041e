/**
 * `coda-runner selfcheck`: what a user runs when something is off, and what
 * the release workflow runs on every built binary. Each check prints one line;
 * any failure makes the exit code non-zero.
 *
 * - `pty`: the user's shell starts in a PTY (node-pty's native addon and, on
 *   macOS, its spawn helper work), a line typed into it comes back, and a
 *   resize reaches it (`stty size`; not on Windows, which has no `stty`);
 * - `config`: the config directory and file are private to the user (0700 and
 *   0600; not checked on Windows, whose ACLs are the user profile's);
 * - `relay`: the relay URL in use (`RELAY_URL`, else the stored one) is a
 *   `ws://` or `wss://` URL;
 * - `holder`: this executable starts as a session holder (`coda-runner hold`)
 *   in a private directory and answers on its socket (not on Windows, where
 *   sessions run in the runner).
 *
 * @module
 */
import { dirname } from "node:path";
import { HolderConnection, IGNORE_FRAMES } from "./holder_connection.ts";
import { type SelfCommand, spawnHolder } from "./holder_pool.ts";
import { parseUrl } from "@coda/relay/urls";
import { spawnPty } from "./pty.ts";

/** One check's outcome. */
export interface CheckResult {
  name: "pty" | "config" | "relay" | "holder";
  ok: boolean;
  /** What was found, in words. */
  detail: string;
}

/** What {@linkcode selfcheck} looks at. */
export interface SelfcheckOptions {
  /** The environment the shell starts with (the runner's). */
  env: Record<string, string>;
  /** The config file's path. */
  configPath: string;
  /** The relay URL in use, if any (not paired and no `RELAY_URL`: nothing to check). */
  relayUrl?: string;
  /** How this executable starts itself, for the holder check. */
  holderCommand: SelfCommand;
  /** Longest wait for the shell, ms (default 10 s: a login shell may be slow). */
  timeoutMs?: number;
}

/** What the shell prints for {@linkcode MARK_COMMAND}: computed by it, so the typed line's echo never matches. */
const MARK_COMMAND = "echo coda-selfcheck-$((6 * 7))";
const MARK = "coda-selfcheck-42";
/** The size the resize check asks for. */
const RESIZED = { cols: 101, rows: 31 };

/** Runs every check; never throws. */
export async function selfcheck(options: SelfcheckOptions): Promise<CheckResult[]> {
  return [
    await checkPty(options),
    await checkConfig(options.configPath),
    checkRelay(options.relayUrl),
    await checkHolder(options.holderCommand),
  ];
}

async function checkHolder(command: SelfCommand): Promise<CheckResult> {
  if (Deno.build.os === "windows") {
    return { name: "holder", ok: true, detail: "not used on Windows: sessions run inside the runner" };
  }
  const dir = await Deno.makeTempDir({ prefix: "coda-selfcheck-" });
  try {
    const holder = await HolderConnection.connect(await spawnHolder(command, dir));
    // Joined as its runner: a spare ends with its runner's connection, closed here.
    holder.join(IGNORE_FRAMES);
    const status = await holder.status();
    await holder.close();
    if (!status) return { name: "holder", ok: false, detail: "a session holder started but did not answer" };
    return {
      name: "holder",
      ok: true,
      detail: `a session holder (${status.version}) starts from this executable and answers on its socket`,
    };
  } catch (error) {
    return { name: "holder", ok: false, detail: `a session holder could not start: ${messageOf(error)}` };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function checkPty(options: SelfcheckOptions): Promise<CheckResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let child;
  try {
    child = spawnPty({
      sessionId: "selfcheck",
      cwd: options.env.HOME ?? options.env.USERPROFILE ?? Deno.cwd(),
      cols: 80,
      rows: 24,
      env: options.env,
    });
  } catch (error) {
    return { name: "pty", ok: false, detail: `could not start a shell in a PTY: ${messageOf(error)}` };
  }
  const decoder = new TextDecoder();
  let output = "";
  let exited = false;
  const waiters: (() => void)[] = [];
  child.onData((data) => {
    output += typeof data === "string" ? data : decoder.decode(data, { stream: true });
    for (const waiter of waiters.splice(0)) waiter();
  });
  child.onExit(() => {
    exited = true;
    for (const waiter of waiters.splice(0)) waiter();
  });
  /** Resolves once the output matches `pattern`; rejects when the shell exits or `timeoutMs` passes. */
  const waitFor = (pattern: RegExp, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs / 1000} s`)), timeoutMs);
      const check = () => {
        if (pattern.test(output)) {
          clearTimeout(timer);
          resolve();
        } else if (exited) {
          clearTimeout(timer);
          reject(new Error(`the shell exited before its ${what}`));
        } else {
          waiters.push(check);
        }
      };
      check();
    });
  try {
    child.write(`${MARK_COMMAND}\r`);
    await waitFor(new RegExp(MARK), "answer to a typed line");
    if (Deno.build.os === "windows") {
      child.resize(RESIZED.cols, RESIZED.rows);
      return {
        name: "pty",
        ok: true,
        detail: "a line typed into the shell came back (no stty to check a resize)",
      };
    }
    child.resize(RESIZED.cols, RESIZED.rows);
    child.write("stty size\r");
    await waitFor(
      new RegExp(`\\b${RESIZED.rows} ${RESIZED.cols}\\b`),
      `size ${RESIZED.rows} ${RESIZED.cols}`,
    );
    return {
      name: "pty",
      ok: true,
      detail: "a line typed into the shell came back, and a resize reached it",
    };
  } catch (error) {
    return { name: "pty", ok: false, detail: messageOf(error) };
  } finally {
    try {
      child.kill(Deno.build.os === "windows" ? undefined : "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

async function checkConfig(configPath: string): Promise<CheckResult> {
  const dir = dirname(configPath);
  if (Deno.build.os === "windows") {
    return { name: "config", ok: true, detail: `${configPath} (permissions are the user profile's)` };
  }
  let dirInfo: Deno.FileInfo;
  try {
    dirInfo = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { name: "config", ok: true, detail: `${dir} does not exist yet (not paired)` };
    }
    return { name: "config", ok: false, detail: `cannot read ${dir}: ${messageOf(error)}` };
  }
  const problems: string[] = [];
  const dirMode = (dirInfo.mode ?? 0) & 0o777;
  if (dirMode & 0o077) problems.push(`${dir} is ${octal(dirMode)}, should be 700`);
  try {
    const fileMode = ((await Deno.stat(configPath)).mode ?? 0) & 0o777;
    if (fileMode & 0o077) problems.push(`${configPath} is ${octal(fileMode)}, should be 600`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      problems.push(`cannot read ${configPath}: ${messageOf(error)}`);
    }
  }
  if (problems.length > 0) {
    return {
      name: "config",
      ok: false,
      detail: `${problems.join("; ")} (it holds the runner token: chmod it)`,
    };
  }
  return { name: "config", ok: true, detail: `${configPath} is private to this user` };
}

function checkRelay(relayUrl: string | undefined): CheckResult {
  if (relayUrl === undefined) return { name: "relay", ok: true, detail: "no relay URL yet (not paired)" };
  try {
    parseUrl("the relay URL", relayUrl, ["ws:", "wss:"], (message) => new Error(message));
    return { name: "relay", ok: true, detail: `${relayUrl} is a valid relay URL` };
  } catch (error) {
    return { name: "relay", ok: false, detail: messageOf(error) };
  }
}

/** The check lines as printed: `ok   pty: …` / `FAIL config: …`. */
export function formatChecks(results: readonly CheckResult[]): string {
  return results.map((r) => `${r.ok ? "ok  " : "FAIL"} ${r.name}: ${r.detail}`).join("\n");
}

function octal(mode: number): string {
  return mode.toString(8).padStart(3, "0");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
