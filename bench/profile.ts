/**
 * The top entries of V8 CPU profiles (`deno run --cpu-prof`): self time per
 * function, the way DevTools' "bottom-up" view sorts them.
 *
 * @module
 */

/** One node of a `.cpuprofile`. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** One function's share of a profile. */
export interface ProfileEntry {
  /** `name (file:line)`, `(program)`, `(garbage collector)`, … */
  name: string;
  /** Share of the busy samples (all but `(idle)`) spent in the function itself. */
  selfShare: number;
}

/**
 * The `count` functions with the most self time in the `.cpuprofile` texts `profiles` taken together,
 * as shares of the time the main thread was busy (a profile of an I/O-bound process is mostly idle).
 */
export function topSelfTime(profiles: string | readonly string[], count: number): ProfileEntry[] {
  const hits = new Map<string, number>();
  let total = 0;
  for (const profile of typeof profiles === "string" ? [profiles] : profiles) {
    const { nodes } = JSON.parse(profile) as { nodes: ProfileNode[] };
    for (const node of nodes) {
      const samples = node.hitCount ?? 0;
      const { functionName, url, lineNumber } = node.callFrame;
      if (samples === 0 || (functionName === "(idle)" && url === "")) continue;
      const file = url.slice(url.lastIndexOf("/") + 1);
      const name = file ? `${functionName || "(anonymous)"} (${file}:${lineNumber + 1})` : functionName;
      hits.set(name, (hits.get(name) ?? 0) + samples);
      total += samples;
    }
  }
  return [...hits].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, samples]) => ({
    name,
    selfShare: samples / total,
  }));
}

/**
 * The top entries of the `.cpuprofile`s under each `dir`/<process>/, merged per process: a runner's
 * session holders each write one as they exit.
 */
export async function summarizeProfiles(
  dir: string,
  count = 12,
): Promise<{ process: string; files: number; top: ProfileEntry[] }[]> {
  const summaries = [];
  for await (const process of Deno.readDir(dir)) {
    if (!process.isDirectory) continue;
    const texts = [];
    for await (const file of Deno.readDir(`${dir}/${process.name}`)) {
      if (file.name.endsWith(".cpuprofile")) {
        texts.push(await Deno.readTextFile(`${dir}/${process.name}/${file.name}`));
      }
    }
    if (texts.length > 0) {
      summaries.push({ process: process.name, files: texts.length, top: topSelfTime(texts, count) });
    }
  }
  return summaries;
}
