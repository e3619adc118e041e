/**
 * The bench's processes: each part under test runs as a real `deno run`
 * subprocess, measured from `/proc` (CPU of all its threads, RSS).
 *
 * @module
 */

import denoConfig from "../deno.json" with { type: "json" };

/** Linux clock ticks per second (`getconf CLK_TCK`; 100 on every kernel the bench targets). */
const CLOCK_TICKS_PER_SECOND = 100;
/** Lines of a child's stderr kept to explain a failure. */
const STDERR_LINES_KEPT = 40;
/** `CODA_BENCH_LOGS=1` echoes every child's output to stderr, prefixed with its name. */
const ECHO_LOGS = Deno.env.get("CODA_BENCH_LOGS") === "1";

/** User + system CPU seconds of process `pid`, all threads (`/proc/<pid>/stat` utime + stime). */
export function cpuSeconds(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start at field 3, `state`.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** The session holders `parent` started (its children running `coda-runner hold`). */
export function holderChildren(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== parent) continue;
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0").includes("hold")) {
        pids.push(Number(entry.name));
      }
    } catch {
      // Gone while listed.
    }
  }
  return pids;
}

/**
 * CPU used by `pids` from now on, sampled every 50 ms while they live: a holder
 * ends with its session, so its last sample (at most 50 ms old) is what counts.
 */
export class LiveCpu {
  readonly #first = new Map<number, number>();
  readonly #last = new Map<number, number>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(pids: number[]) {
    for (const pid of pids) {
      const cpu = tryCpuSeconds(pid);
      if (cpu !== undefined) this.#first.set(pid, cpu);
    }
    this.#timer = setInterval(() => this.#sample(), 50);
  }

  #sample(): void {
    for (const pid of this.#first.keys()) {
      const cpu = tryCpuSeconds(pid);
      if (cpu !== undefined) this.#last.set(pid, cpu);
    }
  }

  /** Stops sampling; the CPU-seconds used since construction. */
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    let total = 0;
    for (const [pid, first] of this.#first) total += (this.#last.get(pid) ?? first) - first;
    return total;
  }
}

function tryCpuSeconds(pid: number): number | undefined {
  try {
    return cpuSeconds(pid);
  } catch {
    return undefined;
  }
}

/** Resident set size of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`). */
export function rssBytes(pid: number | "self"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for ${pid}`);
  return Number(kib[1]) * 1024;
}

/** The repository's root directory. */
export const ROOT: string = new URL("..", import.meta.url).pathname;
/** The `deno run` flags of a task in `deno.json`, so the bench runs each part exactly as its task does. */
function taskFlags(name: "start" | "relay" | "runner"): readonly string[] {
  const task = denoConfig.tasks[name];
  const [deno, run, ...rest] = (typeof task === "string" ? task : task.command).split(/\s+/);
  if (deno !== "deno" || run !== "run") throw new Error(`task ${name} is not a deno run`);
  return rest.filter((word) => word.startsWith("--"));
}

/** `deno run` flags of the runner, as `deno task runner` has them. */
export const RUNNER_FLAGS: readonly string[] = taskFlags("runner");
/** `deno run` flags of the app (with its relay), as `deno task start` has them. */
export const APP_FLAGS: readonly string[] = taskFlags("start");
/** `deno run` flags of the standalone relay, as `deno task relay` has them. */
export const RELAY_FLAGS: readonly string[] = taskFlags("relay");

let cachedDenoDir: string | undefined;
/** This Deno's cache directory, handed to children whose environment is cleared. */
export async function denoDir(): Promise<string> {
  if (cachedDenoDir) return cachedDenoDir;
  const output = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  cachedDenoDir = (JSON.parse(new TextDecoder().decode(output.stdout)) as { denoDir: string }).denoDir;
  return cachedDenoDir;
}

/** A running subprocess whose stdout is read line by line. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly pid: number;
  readonly #stderr: string[] = [];
  readonly #lines: string[] = [];
  #waiters: { pattern: RegExp; resolve: (match: RegExpExecArray) => void }[] = [];
  readonly #done: Promise<unknown>;

  constructor(readonly name: string, args: string[], env: Record<string, string>) {
    this.process = new Deno.Command(Deno.execPath(), {
      args,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.process.pid;
    this.#done = Promise.all([
      this.#read(this.process.stdout, (line) => this.#onLine(line)),
      this.#read(this.process.stderr, (line) => {
        this.#stderr.push(line);
        if (this.#stderr.length > STDERR_LINES_KEPT) this.#stderr.shift();
        this.#onLine(line);
      }),
    ]);
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      lines.forEach(onLine);
    }
  }

  #onLine(line: string): void {
    if (ECHO_LOGS) console.error(`[${this.name}] ${line}`);
    this.#lines.push(line);
    this.#waiters = this.#waiters.filter((waiter) => {
      const match = waiter.pattern.exec(line);
      if (match) waiter.resolve(match);
      return !match;
    });
  }

  /** Resolves the first line (stdout or stderr, seen or to come) matching `pattern`; rejects if the child exits first. */
  line(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    for (const line of this.#lines) {
      const match = pattern.exec(line);
      if (match) return Promise.resolve(match);
    }
    return new Promise((resolve, reject) => {
      const fail = (why: string) =>
        reject(new Error(`${this.name}: ${why} before printing ${pattern}:\n${this.#stderr.join("\n")}`));
      const timer = setTimeout(() => fail(`no line in ${timeoutMs} ms`), timeoutMs);
      this.process.status.then((status) => fail(`exited with ${status.code}`));
      this.#waiters.push({
        pattern,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
      });
    });
  }

  /** Sends SIGTERM (SIGKILL after 5 s) and waits for the exit and the end of its output. */
  async stop(): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, 5000);
    await this.process.status;
    clearTimeout(timer);
    await this.#done;
  }
}

/** A port free on 127.0.0.1 now (the app needs its port before it starts, to advertise its relay URL). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
