/**
 * The bench's figures: one per measured quantity, a JSON line of `bench.jsonl`
 * and a row of the printed table, each beside its goal.
 *
 * @module
 */

/** One figure: a JSON line of `bench.jsonl` and a row of the table. */
export interface Figure {
  metric: string;
  value: number | null;
  unit: string;
  goal: string | null;
  min?: number;
  max?: number;
  /** Whether the goal is met, when it is one a number can meet. */
  met?: boolean;
  note?: string;
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The `p` quantile (0–1) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** A figure from its samples: their median, min–max when several, and `test` of the median against the goal. */
export function figure(
  metric: string,
  values: number[],
  unit: string,
  goal: string | null = null,
  test?: (median: number) => boolean,
  note?: string,
): Figure {
  const value = median(values);
  const result: Figure = { metric, value, unit, goal };
  if (values.length > 1) {
    result.min = Math.min(...values);
    result.max = Math.max(...values);
  }
  if (test) result.met = test(value);
  if (note) result.note = note;
  return result;
}

/** A figure that could not be measured, saying why. */
export function unmeasured(metric: string, unit: string, goal: string | null, why: string): Figure {
  return { metric, value: null, unit, goal, note: why };
}

function formatNumber(value: number): string {
  const size = Math.abs(value);
  return size >= 100 ? value.toFixed(0) : size >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** The table: figure, median, min–max, goal and whether it is met. */
export function formatTable(figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.metric,
    f.value === null ? (f.note ?? "not measured") : `${formatNumber(f.value)} ${f.unit}`,
    f.min === undefined ? "" : `${formatNumber(f.min)}–${formatNumber(f.max!)}`,
    f.goal ?? "",
    f.met === undefined ? "" : f.met ? "met" : "NOT MET",
    f.value === null ? "" : (f.note ?? ""),
  ]);
  const header = ["figure", "median", "min–max", "goal", "", "note"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  );
}
