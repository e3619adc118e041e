/**
 * `deno task compile [--target T]`: builds the single-file `coda-runner`
 * executables into `dist/coda-runner-<target>[.exe]` with `deno compile`.
 *
 * - Exact permissions, not `-A`: `--allow-ffi` (node-pty's native addon),
 *   `--allow-run` (tmux), `--allow-net` (relay, app), `--allow-env`,
 *   `--allow-read`/`--allow-write` (config file, shells' directories),
 *   `--allow-sys` (hostname and OS for pairing).
 * - Only the npm packages the runner reaches are embedded (managed npm,
 *   `--exclude-unused-npm`), plus node-pty's prebuilt binary package for the
 *   target, which node-pty loads by a computed name and so must be included.
 * - `--self-extracting`: on first start the binary writes its embedded files
 *   to disk and runs from there, so node-pty's native parts have real paths
 *   (macOS `posix_spawn`s its `spawn-helper`, Windows forks its conpty agent;
 *   neither can run from inside the executable).
 * - `deno compile` downloads its runtime (denort) for each target; where that
 *   is impossible, set `DENORT_BIN` to a local denort binary of the target
 *   (it is passed through to `deno compile`, which reads it itself).
 * - The binary built for the machine it is built on is then run: `--version`
 *   must answer `coda-runner <version>` (the full `deno` binary given as
 *   DENORT_BIN answers `deno …`: it ignores the embedded program) and
 *   `selfcheck` must pass, or the build fails.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { VERSION } from "./version.ts";
import { RUNNER_PERMISSIONS } from "./permissions.ts";

/** The targets built by default. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** A supported target triple. */
export type Target = (typeof TARGETS)[number];

export { RUNNER_PERMISSIONS } from "./permissions.ts";

const NODE_PTY_PLATFORM: Record<Target, string> = {
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
  "x86_64-apple-darwin": "darwin-x64",
  "aarch64-apple-darwin": "darwin-arm64",
  "x86_64-pc-windows-msvc": "win32-x64",
};

const ROOT = join(import.meta.dirname ?? ".", "..");

/** The output file of `target`. */
export function outputPath(target: Target, outDir = join(ROOT, "dist")): string {
  return join(outDir, `coda-runner-${target}${target.includes("windows") ? ".exe" : ""}`);
}

/** node-pty's version, as pinned in the import map. */
export async function nodePtyVersion(): Promise<string> {
  const map = JSON.parse(await Deno.readTextFile(join(ROOT, "import_map.json"))) as {
    imports: Record<string, string>;
  };
  const match = /^npm:@lydell\/node-pty@(.+)$/.exec(map.imports["@lydell/node-pty"] ?? "");
  if (!match) throw new Error('import_map.json has no pinned "@lydell/node-pty"');
  return match[1];
}

/** The `deno compile` arguments for `target`. */
export function compileArgs(target: Target, ptyVersion: string, output: string): string[] {
  return [
    "compile",
    "--self-extracting",
    "--node-modules-dir=none",
    "--exclude-unused-npm",
    "--include",
    `npm:@lydell/node-pty-${NODE_PTY_PLATFORM[target]}@${ptyVersion}`,
    ...RUNNER_PERMISSIONS,
    "--target",
    target,
    "--output",
    output,
    join(ROOT, "runner", "main.ts"),
  ];
}

/** Builds `target`; resolves the output path, throws with deno's message on failure. */
export async function compileRunner(target: Target, outDir?: string): Promise<string> {
  const output = outputPath(target, outDir);
  const args = compileArgs(target, await nodePtyVersion(), output);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) throw new Error(`deno compile failed for ${target} (exit ${result.code})`);
  return output;
}

/** The built binary did not behave as coda-runner; the message says how. */
export class BrokenBinaryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BrokenBinaryError";
  }
}

/**
 * Runs `binary --version` and `binary selfcheck` (with an empty home, so nothing of this machine's
 * own pairing is used); throws a {@linkcode BrokenBinaryError} unless the version line is
 * `coda-runner <version>` and every check passes.
 */
export async function verifyBinary(binary: string): Promise<void> {
  const run = async (args: string[], home: string) => {
    const result = await new Deno.Command(binary, {
      args,
      env: {
        ...systemEnv(),
        HOME: home,
        USERPROFILE: home,
        CODA_RUNNER_CONFIG: join(home, "coda-runner", "config.json"),
      },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: result.code,
      output: (decoder.decode(result.stdout) + decoder.decode(result.stderr)).trim(),
    };
  };
  const home = await Deno.makeTempDir({ prefix: "coda-runner-verify-" });
  try {
    const version = await run(["--version"], home);
    if (version.code !== 0 || version.output !== `coda-runner ${VERSION}`) {
      throw new BrokenBinaryError(
        `${binary} --version answered "${version.output}" (exit ${version.code}), not "coda-runner ${VERSION}": ` +
          "the binary does not run the runner (was DENORT_BIN the full deno CLI instead of denort?)",
      );
    }
    const check = await run(["selfcheck"], home);
    if (check.code !== 0) {
      throw new BrokenBinaryError(`${binary} selfcheck failed (exit ${check.code}):\n${check.output}`);
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** What any program needs of this machine's environment to start a shell (Windows needs `SystemRoot`). */
function systemEnv(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["PATH", "SystemRoot", "COMSPEC", "TEMP", "TMP", "SHELL"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** The target of the machine this runs on, when it is one of {@linkcode TARGETS}. */
export function hostTarget(): Target | undefined {
  return (TARGETS as readonly string[]).includes(Deno.build.target) ? Deno.build.target as Target : undefined;
}

function parseTargets(args: string[]): Target[] {
  const usage = `usage: deno task compile [--target <${TARGETS.join("|")}>]…`;
  let values: string[];
  try {
    values = parseArgs({ args, options: { target: { type: "string", multiple: true } } }).values.target ?? [];
  } catch (error) {
    throw new Error(`${(error as Error).message}; ${usage}`);
  }
  for (const value of values) {
    if (!(TARGETS as readonly string[]).includes(value)) {
      throw new Error(`unknown target "${value}"; one of: ${TARGETS.join(", ")}`);
    }
  }
  return values.length ? values as Target[] : [...TARGETS];
}

if (import.meta.main) {
  let targets: Target[];
  try {
    targets = parseTargets(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  for (const target of targets) {
    let binary: string;
    try {
      binary = await compileRunner(target);
    } catch (error) {
      console.error((error as Error).message);
      if (!Deno.env.get("DENORT_BIN")) {
        console.error("deno compile could not get its runtime; set DENORT_BIN to a local denort binary.");
      }
      Deno.exit(1);
    }
    console.log(`built ${binary}`);
    if (target !== hostTarget()) continue;
    try {
      await verifyBinary(binary);
      console.log(`verified ${binary}: --version and selfcheck pass`);
    } catch (error) {
      console.error(`compile: ${(error as Error).message}`);
      Deno.exit(1);
    }
  }
}
