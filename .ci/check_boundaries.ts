/**
 * The workspace boundary check run by `deno task check`: no module may reach
 * into a workspace member by a relative path. Members use each other only by
 * package name (`@coda/relay/protocol`), and Deno itself refuses a name its
 * `exports` map does not list, so together the two keep every member's
 * internals private.
 *
 * Usage: `deno run --allow-read .ci/check_boundaries.ts [root]` prints one line
 * per violation and exits 1 if there is any.
 *
 * @module
 */
import { dirname, join, relative, resolve, sep } from "node:path";

/** One relative import that crosses into another workspace member. */
export interface BoundaryViolation {
  /** The importing file, relative to the root. */
  file: string;
  /** The specifier as written. */
  specifier: string;
  /** The member whose internals it reaches (its directory, relative to the root). */
  member: string;
  /** The member's package name, which the import should use instead. */
  packageName: string;
}

interface Member {
  dir: string;
  name: string;
}

const SOURCE_FILE = /\.(ts|tsx|mts|js|jsx|mjs)$/;
const SKIPPED_DIRS = new Set(["node_modules", "dist", ".data", "test-output", ".git"]);
const SPECIFIER_PATTERNS = [
  /\b(?:import|export)\b[^;'"`]*?\bfrom\s*["']([^"']+)["']/g,
  /\bimport\s*["']([^"']+)["']/g,
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
];

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(path));
}

function workspaceMembers(root: string): Member[] {
  const workspace = readJson(join(root, "deno.json")).workspace;
  const dirs = Array.isArray(workspace) ? workspace : [];
  return dirs.map((entry) => {
    const dir = resolve(root, String(entry));
    const name = readJson(join(dir, "deno.json")).name;
    if (typeof name !== "string") throw new Error(`${relative(root, dir)}/deno.json has no "name"`);
    return { dir, name };
  });
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && !SKIPPED_DIRS.has(entry.name)) yield* sourceFiles(path);
    else if (entry.isFile && SOURCE_FILE.test(entry.name)) yield path;
  }
}

/** The specifiers a module imports or re-exports, static and dynamic. */
export function importSpecifiers(source: string): string[] {
  return SPECIFIER_PATTERNS.flatMap((pattern) => [...source.matchAll(pattern)].map((match) => match[1]));
}

function memberOf(members: Member[], path: string): Member | undefined {
  return members.find((member) => path === member.dir || path.startsWith(member.dir + sep));
}

/** Every relative import under `root` that leaves its own member for another member's files. */
export function findBoundaryViolations(root: string): BoundaryViolation[] {
  const absoluteRoot = resolve(root);
  const members = workspaceMembers(absoluteRoot);
  const violations: BoundaryViolation[] = [];
  for (const file of sourceFiles(absoluteRoot)) {
    const home = memberOf(members, file);
    for (const specifier of importSpecifiers(Deno.readTextFileSync(file))) {
      if (!specifier.startsWith(".")) continue;
      const target = memberOf(members, resolve(dirname(file), specifier));
      if (!target || target === home) continue;
      violations.push({
        file: relative(absoluteRoot, file),
        specifier,
        member: relative(absoluteRoot, target.dir),
        packageName: target.name,
      });
    }
  }
  return violations;
}

if (import.meta.main) {
  const violations = findBoundaryViolations(Deno.args[0] ?? ".");
  for (const v of violations) {
    console.error(
      `${v.file}: imports "${v.specifier}", inside ${v.member}/; use an export of ${v.packageName}`,
    );
  }
  if (violations.length > 0) {
    console.error(`${violations.length} import(s) cross a workspace boundary`);
    Deno.exit(1);
  }
}
