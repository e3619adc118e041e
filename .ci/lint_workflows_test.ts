import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { lintWorkflow } from "./lint_workflows.ts";

Deno.test("lint_workflows: the release workflow is clean", async () => {
  const source = await Deno.readTextFile(new URL("../.github/workflows/release.yml", import.meta.url));
  assertEquals(await lintWorkflow(source, "release.yml"), []);
});

Deno.test("lint_workflows: a broken workflow is caught; only labels and scopes newer than the linter pass", async () => {
  const source = [
    "on: push",
    "permissions:",
    "  attestations: write",
    "  contents: red",
    "jobs:",
    "  build:",
    "    runs-on: ubuntu-24.04-arm",
    "    steps:",
    "      - run: echo ${{ matrix.missing }}",
    "      - uses: actions/checkout@v4",
    "        with-typo: 1",
    "",
  ].join("\n");
  const kinds = (await lintWorkflow(source, "bad.yml")).map((result) => result.kind);
  assert(kinds.includes("permissions"), `a bad permission value: ${kinds}`);
  assert(kinds.includes("expression"), `an unknown matrix property: ${kinds}`);
  assert(kinds.includes("syntax-check"), `an unknown step key: ${kinds}`);
  assert(!kinds.includes("runner-label"), `${kinds}`);
});
