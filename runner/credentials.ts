/**
 * The runner's config file: its credentials (from pairing) and the working
 * directory remembered per idea (from `pick-cwd`).
 *
 * Paths per OS as the spec fixes them, overridable with `CODA_RUNNER_CONFIG`.
 * The file is mode 0600 in a 0700 directory and always written atomically
 * (temporary file + rename) so a crash never leaves it half written.
 *
 * @module
 */
import * as v from "valibot";
import { dirname, join } from "node:path";
import type { Env } from "./config.ts";
import { describeIssues } from "@coda/relay/protocol";

/** The config file is unreadable or invalid; the message says how to get out. */
export class CorruptConfigError extends Error {
  constructor(path: string, detail: string) {
    super(`The config file ${path} is unreadable (${detail}). Run \`coda-runner pair\` to pair again.`);
    this.name = "CorruptConfigError";
  }
}

/** What pairing stores. */
export const CredentialsSchema = v.object({
  relayUrl: v.pipe(v.string(), v.regex(/^wss?:\/\//, "relayUrl must be a ws:// or wss:// URL")),
  runnerId: v.pipe(v.string(), v.minLength(1)),
  runnerToken: v.pipe(v.string(), v.minLength(1)),
  appUrl: v.pipe(v.string(), v.regex(/^https?:\/\//, "appUrl must be an http:// or https:// URL")),
  email: v.optional(v.string()),
  pairedAt: v.optional(v.string()),
});
/** What pairing stores. */
export type Credentials = v.InferOutput<typeof CredentialsSchema>;

/** The whole file. */
export const RunnerFileSchema = v.object({
  version: v.literal(1),
  credentials: v.optional(CredentialsSchema),
  /** ideaId → directory new sessions of that idea start in. */
  cwds: v.optional(v.record(v.string(), v.string()), {}),
});
/** The whole file. */
export type RunnerFile = v.InferOutput<typeof RunnerFileSchema>;

/** Where the config file lives: `CODA_RUNNER_CONFIG`, else the OS's usual place. */
export function defaultConfigPath(env: Env, os: typeof Deno.build.os = Deno.build.os): string {
  if (env.CODA_RUNNER_CONFIG?.trim()) return env.CODA_RUNNER_CONFIG.trim();
  const home = env.HOME ?? env.USERPROFILE ?? ".";
  if (os === "darwin") return join(home, "Library", "Application Support", "Coda Runner", "config.json");
  if (os === "windows") {
    return join(env.APPDATA ?? join(home, "AppData", "Roaming"), "Coda Runner", "config.json");
  }
  const base = env.XDG_CONFIG_HOME?.trim() ? env.XDG_CONFIG_HOME : join(home, ".config");
  return join(base, "coda-runner", "config.json");
}

/** Reads the file; a missing file is an empty config, a broken one a {@linkcode CorruptConfigError}. */
export async function readRunnerFile(path: string): Promise<RunnerFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { version: 1, cwds: {} };
    throw new CorruptConfigError(path, error instanceof Error ? error.message : String(error));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CorruptConfigError(path, "not valid JSON");
  }
  const parsed = v.safeParse(RunnerFileSchema, json);
  if (!parsed.success) throw new CorruptConfigError(path, describeIssues(parsed.issues));
  return parsed.output;
}

/** Writes the file atomically, mode 0600, creating its directory with mode 0700. */
export async function writeRunnerFile(path: string, file: RunnerFile): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const posix = Deno.build.os !== "windows";
  const temp = join(dir, `.config.json.${crypto.randomUUID()}.tmp`);
  try {
    await Deno.writeTextFile(temp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600, createNew: true });
    if (posix) await Deno.chmod(temp, 0o600);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/**
 * The config file with serialized read-modify-write updates, so a `pick-cwd`
 * and a pairing never overwrite each other.
 */
export class RunnerFileStore {
  /** The file's path. */
  readonly path: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /** Reads the current file. */
  read(): Promise<RunnerFile> {
    return readRunnerFile(this.path);
  }

  /**
   * Applies `change` to the current file and writes the result. With
   * `replaceCorrupt`, a broken file is treated as empty (pairing and logout
   * are the way out of a corrupt file).
   */
  update(
    change: (file: RunnerFile) => RunnerFile,
    options: { replaceCorrupt?: boolean } = {},
  ): Promise<RunnerFile> {
    const next = this.#queue.then(async () => {
      const current = await readRunnerFile(this.path).catch((error) => {
        if (options.replaceCorrupt && error instanceof CorruptConfigError) {
          return { version: 1 as const, cwds: {} };
        }
        throw error;
      });
      const updated = change(current);
      await writeRunnerFile(this.path, updated);
      return updated;
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Stores credentials from pairing (keeping remembered directories). */
  saveCredentials(credentials: Credentials): Promise<RunnerFile> {
    return this.update((file) => ({ ...file, credentials }), { replaceCorrupt: true });
  }

  /** Forgets the credentials (keeping remembered directories). */
  clearCredentials(): Promise<RunnerFile> {
    return this.update(({ credentials: _dropped, ...rest }) => rest, { replaceCorrupt: true });
  }

  /** Remembers `path` as the directory of `ideaId`. */
  rememberCwd(ideaId: string, path: string): Promise<RunnerFile> {
    return this.update((file) => ({ ...file, cwds: { ...file.cwds, [ideaId]: path } }));
  }
}
