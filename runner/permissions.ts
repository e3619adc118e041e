/**
 * The permissions the runner runs with, compiled in or from source: exact, never `-A`.
 * `--allow-ffi` (node-pty's native addon), `--allow-run` (tmux, the service manager), `--allow-net`
 * (relay, app), `--allow-env`, `--allow-read`/`--allow-write` (config file, shells' directories),
 * `--allow-sys` (hostname and OS for pairing).
 *
 * @module
 */

/** The runner's `deno run` / `deno compile` permission flags. */
export const RUNNER_PERMISSIONS = [
  "--allow-ffi",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
] as const;
