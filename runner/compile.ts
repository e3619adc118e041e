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
 * - `deno compile` downloads its runtime (denort) for each target; where that
 *   is impossible, set `DENORT_BIN` to a local denort binary of the target
 *   (it is passed through to `deno compile`, which reads it itself).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";

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

/** The permissions the runner is compiled with. */
export const RUNNER_PERMISSIONS = [
  "--allow-ffi",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
] as const;

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
    try {
      console.log(`built ${await compileRunner(target)}`);
    } catch (error) {
      console.error((error as Error).message);
      if (!Deno.env.get("DENORT_BIN")) {
        console.error("deno compile could not get its runtime; set DENORT_BIN to a local denort binary.");
      }
      Deno.exit(1);
    }
  }
}
