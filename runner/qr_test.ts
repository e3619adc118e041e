import { deepEqual as assertEquals, equal, ok as assert } from "node:assert/strict";
import { renderQr } from "./qr.ts";

const LINK = "http://localhost:8080/devmode/pair?code=ABCD-EFGH";
const QUIET = 2;

/** Reads a rendering back into rows of modules, `true` for dark. */
function modules(rendered: string): boolean[][] {
  const halves: Record<string, [boolean, boolean]> = {
    "█": [false, false],
    "▀": [false, true],
    "▄": [true, false],
    " ": [true, true],
  };
  const rows: boolean[][] = [];
  for (const line of rendered.split("\n")) {
    const pairs = [...line].map((char) => halves[char]);
    rows.push(pairs.map(([top]) => top), pairs.map(([, bottom]) => bottom));
  }
  return rows;
}

Deno.test("a QR code is drawn as equal-width lines of half blocks with a quiet zone", () => {
  const lines = renderQr(LINK).split("\n");
  const width = lines[0].length;
  assert(width >= 21 + 4, "at least a version-1 code plus the quiet zone");
  for (const line of lines) assertEquals(line.length, width);
  assert(/^[█▀▄ ]+$/.test(lines.join("")));
  assertEquals(lines[0], "█".repeat(width), "the top quiet zone is light");
  assertEquals(lines.length, Math.ceil(width / 2));
});

Deno.test("the drawn modules are a QR code: version size, quiet zone, finders, timing, format of level L", () => {
  const all = modules(renderQr(LINK, QUIET));
  const width = all[0].length;
  const size = width - 2 * QUIET;
  equal((size - 17) % 4, 0, `${size} is 4·version + 17`);
  for (let i = 0; i < width; i++) {
    for (const q of [0, 1, width - 2, width - 1]) {
      equal(all[q][i], false, `quiet row ${q}, col ${i}`);
      equal(all[i][q], false, `quiet col ${q}, row ${i}`);
    }
  }
  const at = (row: number, col: number) => all[row + QUIET][col + QUIET];
  const finder = (top: number, left: number) => {
    for (let r = 0; r < 7; r++) {
      for (let c = 0; c < 7; c++) {
        const ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
        equal(at(top + r, left + c), ring !== 2, `finder at ${top},${left}: ${r},${c}`);
      }
    }
  };
  finder(0, 0);
  finder(0, size - 7);
  finder(size - 7, 0);
  for (let i = 8; i < size - 8; i++) {
    equal(at(6, i), i % 2 === 0, `horizontal timing ${i}`);
    equal(at(i, 6), i % 2 === 0, `vertical timing ${i}`);
  }
  equal(at(size - 8, 8), true, "the dark module");

  // The 15 format bits, both copies, in the order ISO/IEC 18004 places them.
  const bits = (cells: [number, number][]) =>
    cells.reduce((word, [row, col], i) => word | (Number(at(row, col)) << i), 0);
  const first = bits([
    ...[0, 1, 2, 3, 4, 5, 7, 8].map((row): [number, number] => [row, 8]),
    ...[7, 5, 4, 3, 2, 1, 0].map((col): [number, number] => [8, col]),
  ]);
  const second = bits([
    ...Array.from({ length: 8 }, (_, i): [number, number] => [8, size - 1 - i]),
    ...Array.from({ length: 7 }, (_, i): [number, number] => [size - 7 + i, 8]),
  ]);
  equal(first, second, "both format copies agree");
  const format = first ^ 0x5412;
  const data = format >> 10;
  let remainder = data;
  for (let i = 0; i < 10; i++) remainder = (remainder << 1) ^ ((remainder >> 9) * 0x537);
  equal(format, (data << 10) | remainder, "the format bits carry a valid BCH code");
  equal(data >> 3, 0b01, "error correction level L");
});
