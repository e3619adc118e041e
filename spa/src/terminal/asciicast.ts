/**
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): parsing and
 * timed playback, independent of any terminal.
 *
 * @module
 */

/** The header line. */
export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  timestamp?: number;
  title?: string;
}

/** An output event: seconds since the start, and the text. */
export interface CastOutput {
  time: number;
  data: string;
}

/** A parsed recording (output events only; input and markers are not replayed). */
export interface Cast {
  header: CastHeader;
  events: CastOutput[];
  /** Seconds from the start to the last event. */
  duration: number;
}

/** Parses asciicast v2 text; throws an `Error` that says what is wrong. */
export function parseAsciicast(text: string): Cast {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  if (lines.length === 0) throw new Error("The recording is empty.");
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    throw new Error("The recording does not start with an asciicast header.");
  }
  if (header?.version !== 2) throw new Error("Only asciicast version 2 recordings can be played.");
  const width = Number(header.width) || 80;
  const height = Number(header.height) || 24;
  const events: CastOutput[] = [];
  let last = 0;
  for (let i = 1; i < lines.length; i++) {
    let event: unknown;
    try {
      event = JSON.parse(lines[i]);
    } catch {
      throw new Error(`Line ${i + 1} of the recording is not valid JSON.`);
    }
    if (!Array.isArray(event) || typeof event[0] !== "number" || typeof event[2] !== "string") {
      throw new Error(`Line ${i + 1} of the recording is not an event.`);
    }
    if (event[1] !== "o") continue;
    const time = Math.max(last, event[0]);
    last = time;
    events.push({ time, data: event[2] });
  }
  return {
    header: {
      version: 2,
      width: Math.min(Math.max(Math.round(width), 1), 1000),
      height: Math.min(Math.max(Math.round(height), 1), 1000),
      timestamp: typeof header.timestamp === "number" ? header.timestamp : undefined,
      title: typeof header.title === "string" ? header.title : undefined,
    },
    events,
    duration: last,
  };
}

/**
 * Event times with every pause longer than `maxIdle` seconds shortened to
 * `maxIdle`, so playback skips long idle stretches.
 */
export function compressIdle(events: CastOutput[], maxIdle: number): number[] {
  const times: number[] = [];
  let previous = 0;
  let shifted = 0;
  for (const event of events) {
    shifted += Math.min(event.time - previous, maxIdle);
    previous = event.time;
    times.push(shifted);
  }
  return times;
}

/** Options of {@linkcode CastPlayer}. */
export interface CastPlayerOptions {
  /** Receives output in order. */
  write: (data: string) => void;
  /** Clears the screen (restart). */
  reset: () => void;
  /** Position in seconds of (compressed) playback time, and the total. */
  onProgress?: (position: number, total: number) => void;
  onEnd?: () => void;
  /** Longest pause kept, in seconds (default 2). */
  maxIdle?: number;
}

/** Plays a {@linkcode Cast} with its timing at an adjustable speed. */
export class CastPlayer {
  #cast: Cast;
  #options: CastPlayerOptions;
  #times: number[];
  #index = 0;
  #position = 0;
  #speed = 1;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #startedAt = 0;
  #startPosition = 0;

  constructor(cast: Cast, options: CastPlayerOptions) {
    this.#cast = cast;
    this.#options = options;
    this.#times = compressIdle(cast.events, options.maxIdle ?? 2);
  }

  /** Total (compressed) length in seconds. */
  get total(): number {
    return this.#times.at(-1) ?? 0;
  }
  /** Whether it is playing. */
  get playing(): boolean {
    return this.#timer !== undefined;
  }
  /** Whether every event was written. */
  get finished(): boolean {
    return this.#index >= this.#cast.events.length;
  }

  /** Starts or resumes; from the beginning when finished. */
  play(): void {
    if (this.playing) return;
    if (this.finished) this.restart();
    this.#startedAt = performance.now();
    this.#startPosition = this.#position;
    this.#schedule();
  }

  /** Pauses. */
  pause(): void {
    if (!this.playing) return;
    this.#position = this.#now();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Changes the speed (1 = real time), keeping the position. */
  setSpeed(speed: number): void {
    const wasPlaying = this.playing;
    this.pause();
    this.#speed = speed;
    if (wasPlaying) this.play();
  }

  /** Back to the start (paused). */
  restart(): void {
    this.pause();
    this.#index = 0;
    this.#position = 0;
    this.#options.reset();
    this.#options.onProgress?.(0, this.total);
  }

  /** Writes everything that is left at once. */
  skipToEnd(): void {
    this.pause();
    this.#flushUntil(Number.POSITIVE_INFINITY);
    this.#position = this.total;
    this.#options.onProgress?.(this.total, this.total);
    this.#options.onEnd?.();
  }

  /** Stops timers for good. */
  dispose(): void {
    this.pause();
  }

  #now(): number {
    return this.#startPosition + ((performance.now() - this.#startedAt) / 1000) * this.#speed;
  }

  #flushUntil(position: number): void {
    let chunk = "";
    while (this.#index < this.#times.length && this.#times[this.#index] <= position) {
      chunk += this.#cast.events[this.#index].data;
      this.#index++;
    }
    if (chunk) this.#options.write(chunk);
  }

  #schedule(): void {
    const position = this.#now();
    this.#flushUntil(position);
    this.#options.onProgress?.(Math.min(position, this.total), this.total);
    if (this.finished) {
      this.#timer = undefined;
      this.#position = this.total;
      this.#options.onEnd?.();
      return;
    }
    const wait = ((this.#times[this.#index] - position) / this.#speed) * 1000;
    this.#timer = setTimeout(() => this.#schedule(), Math.max(0, Math.min(wait, 250)));
  }
}
