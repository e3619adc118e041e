/**
 * QR codes drawn in the terminal with half-block characters (two module rows
 * per text line), light modules as blocks so the code reads on the usual dark
 * terminal background.
 *
 * @module
 */
import QRCode from "qrcode";

interface QrMatrix {
  size: number;
  get(row: number, col: number): number | boolean;
}

const createQr = (QRCode as unknown as {
  create(text: string, options: { errorCorrectionLevel: "L" | "M" | "Q" | "H" }): { modules: QrMatrix };
}).create;

/** Draws `text` as a QR code; lines joined with `\n`. `quiet`: blank modules around it. */
export function renderQr(text: string, quiet = 2): string {
  const { modules } = createQr(text, { errorCorrectionLevel: "L" });
  const size = modules.size + quiet * 2;
  const light = (row: number, col: number): boolean => {
    const r = row - quiet;
    const c = col - quiet;
    if (r < 0 || c < 0 || r >= modules.size || c >= modules.size) return true;
    return !modules.get(r, c);
  };
  const lines: string[] = [];
  for (let row = 0; row < size; row += 2) {
    let line = "";
    for (let col = 0; col < size; col++) {
      const top = light(row, col);
      const bottom = row + 1 < size ? light(row + 1, col) : false;
      line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ";
    }
    lines.push(line);
  }
  return lines.join("\n");
}
