/**
 * Taking OSC sequences of our own out of a session's output stream: the shell
 * integration's marks (`shell_integration.ts`) and `coda-download`'s
 * (`download_command.ts`). A sequence is ESC, one of the filter's introducers
 * (`]7;`, `]133;`, …), a payload, and BEL or ST (ESC `\`). The start of a
 * sequence at the end of a read is held back for the next one.
 *
 * @module
 */
import { concatBytes, indexOfByte } from "@coda/relay/bytes";

/** The byte that starts every sequence. */
export const ESC = 0x1b;
const BEL = 0x07;
/** `\`, the second byte of ST. */
const BACKSLASH = 0x5c;

/** A sequence found: which introducer (its index), its payload, and one past its end. */
export interface OscSequence {
  introducer: number;
  payload: Uint8Array;
  end: number;
}

/**
 * The sequence with one of `introducers` that starts at the ESC at `at`;
 * `"partial"` when the bytes run out while it could still be one, `undefined`
 * when it is none.
 */
export function oscAt(
  data: Uint8Array,
  at: number,
  introducers: readonly Uint8Array[],
): OscSequence | "partial" | undefined {
  for (const [index, introducer] of introducers.entries()) {
    let i = at + 1;
    let k = 0;
    while (k < introducer.length && i < data.length && data[i] === introducer[k]) {
      i++;
      k++;
    }
    if (i === data.length && k < introducer.length) return "partial";
    if (k < introducer.length) continue;
    const start = i;
    while (i < data.length && data[i] !== BEL && data[i] !== ESC) i++;
    if (i === data.length || (data[i] === ESC && i + 1 === data.length)) return "partial";
    const end = data[i] === BEL ? i + 1 : data[i + 1] === BACKSLASH ? i + 2 : -1;
    if (end < 0) return undefined;
    return { introducer: index, payload: data.subarray(start, i), end };
  }
  return undefined;
}

/** Options of {@linkcode OscFilter}. */
export interface OscFilterOptions {
  /** What follows ESC in each kind of sequence, before its payload. */
  introducers: readonly Uint8Array[];
  /** The longest start of a sequence held back; a longer one is output. */
  maxBytes: number;
  /** A sequence was taken out. */
  onSequence(sequence: OscSequence): void;
  /** Ordinary output passed on (between, before or after sequences). */
  onText?(): void;
}

/** Strips the sequences of its introducers from a stream of reads. */
export class OscFilter {
  readonly #options: OscFilterOptions;
  #carry: Uint8Array = new Uint8Array(0);

  constructor(options: OscFilterOptions) {
    this.#options = options;
  }

  /** Whether the end of the last read is held back (the start of a sequence). */
  get holding(): boolean {
    return this.#carry.length > 0;
  }

  /**
   * One read in, the output to pass on out. Output without an ESC passes through untouched.
   * `firstEscape`: where `data`'s first ESC is (−1: none), when the caller has looked already.
   */
  filter(data: Uint8Array, firstEscape?: number): Uint8Array {
    const { introducers, maxBytes, onSequence, onText } = this.#options;
    let text = data;
    if (this.#carry.length > 0) {
      text = concatBytes([this.#carry, data]);
      this.#carry = new Uint8Array(0);
    }
    let escape = text === data && firstEscape !== undefined ? firstEscape : indexOfByte(text, ESC);
    if (escape < 0) {
      if (text.length > 0) onText?.();
      return text;
    }
    const out: Uint8Array[] = [];
    let last = 0;
    let end = text.length;
    for (; escape >= 0; escape = indexOfByte(text, ESC, escape + 1)) {
      const found = oscAt(text, escape, introducers);
      if (found === undefined) continue;
      if (found === "partial") {
        // Nothing after it can start another sequence; a start too long to be ours is output.
        const from = text.length - escape <= maxBytes
          ? escape
          : text[text.length - 1] === ESC
          ? text.length - 1
          : -1;
        if (from >= 0) {
          this.#carry = text.slice(from);
          end = from;
        }
        break;
      }
      if (escape > last) onText?.();
      out.push(text.subarray(last, escape));
      last = found.end;
      onSequence(found);
      escape = found.end - 1;
    }
    if (end > last) {
      onText?.();
      out.push(text.subarray(last, end));
    }
    if (out.length === 1) return out[0];
    return concatBytes(out);
  }

  /** Gives up what is held back: no sequence after all, it is output. */
  flush(): Uint8Array {
    const held = this.#carry;
    this.#carry = new Uint8Array(0);
    if (held.length > 0) this.#options.onText?.();
    return held;
  }
}
