/// <reference lib="deno.ns" />
/**
 * Test helpers for the SPA's end-to-end tests.
 *
 * @module
 */
import { buildSpa } from "./build.ts";

let built: Promise<string> | undefined;

/**
 * The SPA built from the current sources into a directory of this test file's own, once per file
 * (removed when the process ends): the e2e files run in parallel, and one rebuilding the shared
 * `spa/dist` under another's page made that page's assets 404 mid-load.
 */
export function builtSpa(): Promise<string> {
  built ??= (async () => {
    const outDir = await Deno.makeTempDir({ prefix: "coda-e2e-spa-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(outDir, { recursive: true }));
    await buildSpa({ outDir });
    return outDir;
  })();
  return built;
}
