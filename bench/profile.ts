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
 * The `count` functions with the most self time in the `.cpuprofile` text `profile`, as shares of
 * the time the main thread was busy (a profile of an I/O-bound process is mostly idle).
 */
export function topSelfTime(profile: string, count: number): ProfileEntry[] {
  const { nodes } = JSON.parse(profile) as { nodes: ProfileNode[] };
  const hits = new Map<string, number>();
  let total = 0;
  for (const node of nodes) {
    const samples = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (samples === 0 || (functionName === "(idle)" && url === "")) continue;
    const file = url.slice(url.lastIndexOf("/") + 1);
    const name = file ? `${functionName || "(anonymous)"} (${file}:${lineNumber + 1})` : functionName;
    hits.set(name, (hits.get(name) ?? 0) + samples);
    total += samples;
  }
  return [...hits].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, samples]) => ({
    name,
    selfShare: samples / total,
  }));
}

/** Every `.cpuprofile` under `dir`/<process>/, each with its top entries. */
export async function summarizeProfiles(
  dir: string,
  count = 12,
): Promise<{ process: string; file: string; top: ProfileEntry[] }[]> {
  const summaries = [];
  for await (const process of Deno.readDir(dir)) {
    if (!process.isDirectory) continue;
    for await (const file of Deno.readDir(`${dir}/${process.name}`)) {
      if (!file.name.endsWith(".cpuprofile")) continue;
      const text = await Deno.readTextFile(`${dir}/${process.name}/${file.name}`);
      summaries.push({ process: process.name, file: file.name, top: topSelfTime(text, count) });
    }
  }
  return summaries;
}
