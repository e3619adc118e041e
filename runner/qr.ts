/**
 * QR codes drawn in the terminal with half-block characters (two module rows
 * per text line), light modules as blocks so the code reads on the usual dark
 * terminal background.
 *
 * @module
 */
import { renderUnicodeCompact } from "uqr";

/**
 * Draws `text` as a QR code (error correction L); lines joined with `\n`.
 * `quiet`: light modules around it, so a scanner finds its edge.
 */
export function renderQr(text: string, quiet = 2): string {
  return renderUnicodeCompact(text, { ecc: "L", border: quiet });
}
