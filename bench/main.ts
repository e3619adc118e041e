/**
 * `deno task bench [--quick] [--out FILE] [--cpu-prof DIR] [--only throughput|latency|flood|capacity]`: the data path's figures side by
 * side in one run, each beside its goal (issue 10). The app (API + relay), the
 * runner (`runner/main.ts` with a token paired over HTTP), `coda-runner serve`
 * and a raw WebSocket loopback each run as a real subprocess, measured from
 * `/proc` (CPU of all threads, RSS); this process is the client.
 *
 * - Throughput of a 64 MiB base64 `cat` (one line, so the PTY passes it
 *   unchanged), byte-exact in every run up to the close that follows the exit:
 *   in-process node-pty (the ceiling), the loopback, relay + binary client,
 *   relay + spec-only JSON client, serve. Interleaved: a warm-up round, then
 *   rounds in an order rotated each round; each path's ratio is to the ceiling
 *   of its own round. CPU-seconds per 64 MiB of every process involved.
 * - Keystroke echo p50/p99: back to back, and paced.
 * - Attach: client link opened → the new shell's first byte.
 * - A `yes` flood to a client that renders 1 MB/s: RSS growth of relay and
 *   runner, then Ctrl-C to prompt. Runner idle RSS beside a bare Deno's.
 *
 * Writes one JSON line per figure to `test-output/bench.jsonl` (`--out`).
 * With `--cpu-prof DIR` the app, the runner and serve write V8 CPU profiles
 * under `DIR/<process>/` and the run ends with each one's top self-time entries
 * (the figures are then slower: profiling costs CPU).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import pty from "@lydell/node-pty";
import { createSession, pairRunner, signup } from "@coda/api/testing";
import { clientLinkQuery } from "@coda/relay/protocol";
import { endHolders, silentLogger } from "@coda/runner/testing";
import { type AckPolicy, BenchClient, type ClientMode, NotNegotiatedError } from "./client.ts";
import {
  APP_FLAGS,
  Child,
  cpuSeconds,
  denoDir,
  freePort,
  holderChildren,
  LiveCpu,
  ROOT,
  rssBytes,
  RUNNER_FLAGS,
} from "./procs.ts";
import { capacityFigures, type CapacityPlan } from "./capacity.ts";
import { type Figure, figure, formatTable, percentile, unmeasured } from "./figures.ts";
import { summarizeProfiles } from "./profile.ts";

const MiB = 1024 * 1024;
const MB = 1e6;
/** What the CPU figures are normalised to. */
const CPU_PER_BYTES = 64 * MiB;
/** Printed on its own line just before the file, so the check knows where the file starts. */
const MARK = "BEGIN\r\n";
const TERMINAL = { cols: 120, rows: 40 };
/** Longest any one throughput run may take. */
const RUN_TIMEOUT_MS = 240_000;

/** How much a run measures. */
interface Plan {
  catBytes: number;
  warmups: number;
  rounds: number;
  backToBack: number;
  paced: number;
  pacedIntervalMs: number;
  attaches: number;
  floodSeconds: number;
  /** Where the app, runner and serve write CPU profiles (`--cpu-prof DIR`), if anywhere. */
  profileDir?: string;
  /** `--only PART`: that part of the bench alone. */
  only?: BenchPart;
  capacity: CapacityPlan;
}

const FULL: Plan = {
  catBytes: 64 * MiB,
  warmups: 1,
  rounds: 4,
  backToBack: 1000,
  paced: 300,
  pacedIntervalMs: 100,
  attaches: 10,
  floodSeconds: 10,
  capacity: { runners: 400, sessions: 10_000, replayAttaches: 50, rounds: 3 },
};

const QUICK: Plan = {
  catBytes: 2 * MiB,
  warmups: 0,
  rounds: 1,
  backToBack: 50,
  paced: 10,
  pacedIntervalMs: 20,
  attaches: 2,
  floodSeconds: 1,
  capacity: { runners: 10, sessions: 200, replayAttaches: 5, rounds: 1 },
};

/** The parts of a run, each of which `--only` can run alone. */
const BENCH_PARTS = ["throughput", "latency", "flood", "capacity"] as const;
type BenchPart = typeof BENCH_PARTS[number];

const step = (what: string) => console.error(`… ${what}`);

const singleByte = new TextDecoder("windows-1252");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Checks that what follows {@linkcode MARK} is exactly the file: its length and SHA-1. */
class ExactCheck {
  readonly #hash = createHash("sha1");
  #before = "";
  started: boolean;
  length = 0;
  startAt = 0;
  lastAt = 0;

  constructor(marked: boolean) {
    this.started = !marked;
  }

  push = (chunk: string | Uint8Array): void => {
    const now = performance.now();
    if (this.started) {
      if (this.length === 0) this.startAt = now;
      return this.#take(chunk, now);
    }
    // One character per byte (windows-1252), so an index in the text is an index in the chunk.
    const text = this.#before + (typeof chunk === "string" ? chunk : singleByte.decode(chunk));
    const at = text.indexOf(MARK);
    if (at < 0) {
      this.#before = text.slice(-(MARK.length - 1));
      return;
    }
    this.started = true;
    this.startAt = now;
    const from = at + MARK.length - this.#before.length;
    this.#before = "";
    const rest = typeof chunk === "string" ? chunk.slice(from) : chunk.subarray(from);
    if (rest.length) this.#take(rest, now);
  };

  #take(chunk: string | Uint8Array, now: number): void {
    this.#hash.update(chunk);
    this.length += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
    this.lastAt = now;
  }

  digest(): string {
    return this.#hash.digest("hex");
  }
}

/** The file every throughput run prints: base64 of random bytes, no newline (the PTY passes it unchanged). */
async function writeCatFile(path: string, bytes: number): Promise<string> {
  const random = new Uint8Array(bytes * 3 / 4);
  for (let at = 0; at < random.length; at += 65536) crypto.getRandomValues(random.subarray(at, at + 65536));
  const text = random.toBase64();
  await Deno.writeTextFile(path, text);
  return createHash("sha1").update(text).digest("hex");
}

/** What the bench drives: something that takes keystrokes and counts output bytes. */
interface Terminal {
  readonly bytes: number;
  readonly text: string;
  stdin(data: string): void;
  until(check: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/** A shell on node-pty in this process: the ceiling. */
class PtyTerminal implements Terminal {
  readonly process: ReturnType<typeof pty.spawn>;
  bytes = 0;
  text = "";
  sink: ((chunk: string) => void) | undefined;
  readonly exited: Promise<void>;
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(file: string, args: string[], env: Record<string, string>) {
    this.process = pty.spawn(file, args, { name: "xterm-256color", ...TERMINAL, env, cwd: env.HOME });
    this.process.onData((data: string) => {
      this.bytes += Buffer.byteLength(data);
      this.text = (this.text + data).slice(-8192);
      this.sink?.(data);
      this.#waiters = this.#waiters.filter((w) => !(w.check() && (w.resolve(), true)));
    });
    this.exited = new Promise((resolve) => this.process.onExit(() => resolve()));
  }

  stdin(data: string): void {
    this.process.write(data);
  }

  until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: timed out waiting for ${what}`)), timeoutMs);
      this.#waiters.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/** The throughput paths, in the order of the first round. */
const PATHS = ["ceiling", "loopback", "relay-binary", "relay-json", "relay-in-process", "serve"] as const;
type PathName = typeof PATHS[number];

const PATH_LABEL: Record<PathName, string> = {
  ceiling: "in-process node-pty (ceiling)",
  loopback: "raw Deno WebSocket loopback",
  "relay-binary": "relay, binary client",
  "relay-json": "relay, spec-only JSON client",
  "relay-in-process": "relay, binary client, sessions in the runner (TTY_SYNC=off)",
  serve: "coda-runner serve, direct",
};

/** One throughput run. */
interface Run {
  path: PathName;
  round: number;
  mbPerSecond: number;
  exact: boolean;
  problem?: string;
  /** CPU-seconds per {@linkcode CPU_PER_BYTES}, by process. */
  cpu: Record<string, number>;
}

/** The processes of the run and what the bench knows about them. */
interface World {
  plan: Plan;
  dir: string;
  catFile: string;
  catHash: string;
  appUrl: string;
  relayUrl: string;
  cookie: string;
  serveUrl: string;
  loopbackUrl: string;
  app: Child;
  /** The runner as installed: each session in a session holder. */
  runner: Child;
  /** A runner with `TTY_SYNC=off`: sessions in its own process, as before holders. */
  inProcessRunner: Child;
  runnerIds: { held: string; inProcess: string };
  serve: Child;
  loopback: Child;
  shellEnv: Record<string, string>;
  /** Whether the relay (and serve) answered `coda.v2`. */
  binary: { relay: boolean; serve: boolean };
}

/** Opens a client on a new relay session (of the runner with holders unless `inProcess`). */
async function relayClient(
  world: World,
  mode: ClientMode,
  ack: AckPolicy,
  inProcess = false,
): Promise<BenchClient> {
  const runnerId = inProcess ? world.runnerIds.inProcess : world.runnerIds.held;
  const ticket = await createSession(world.appUrl, world.cookie, { ideaId: "bench", runnerId });
  const query = clientLinkQuery(ticket.token, { ack: ack.kind !== "none", ...TERMINAL });
  return new BenchClient(`${world.relayUrl}/client?${query}`, mode, ack, ticket.sessionId);
}

/** Opens a client on a new serve session. */
function serveClient(world: World, mode: ClientMode, ack: AckPolicy): BenchClient {
  const url = `${world.serveUrl}&cols=${TERMINAL.cols}&rows=${TERMINAL.rows}${
    ack.kind === "none" ? "" : "&ack=1"
  }`;
  return new BenchClient(url, mode, ack);
}

/** Waits for a client's link and its shell's first output (and, from serve, the session id). */
async function ready(client: BenchClient, timeoutMs = 30_000): Promise<BenchClient> {
  await client.opened;
  await client.until(() => client.bytes > 0 && client.sessionId !== undefined, "the first prompt", timeoutMs);
  return client;
}

function cpuOf(pids: Record<string, number | "self">): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
}

function perCpuBytes(before: Record<string, number>, after: Record<string, number>, bytes: number) {
  return Object.fromEntries(
    Object.keys(before).map((name) => [name, (after[name] - before[name]) * CPU_PER_BYTES / bytes]),
  );
}

/** One throughput run of `path`. */
async function throughput(world: World, path: PathName, round: number): Promise<Run> {
  const expected = world.plan.catBytes;
  const command = `printf '%s\\n' BE""GIN; exec cat ${world.catFile}\r`;
  const check = new ExactCheck(path !== "loopback");
  let pids: Record<string, number | "self">;
  let problem: string | undefined;
  /** The runner's session holders: the session's own works for the runner (the spare idles). */
  let holders: LiveCpu | undefined;
  const verdict = (seconds: number, before: Record<string, number>): Run => {
    const after = cpuOf(pids);
    if (holders) {
      before.holder = 0;
      after.holder = holders.stop();
    }
    const digest = check.digest();
    if (!problem && check.length !== expected) problem = `${check.length - expected} bytes off`;
    if (!problem && digest !== world.catHash) problem = "bytes differ";
    return {
      path,
      round,
      mbPerSecond: expected / MB / seconds,
      exact: !problem,
      problem,
      cpu: perCpuBytes(before, after, expected),
    };
  };

  if (path === "ceiling") {
    pids = { bench: "self" };
    const before = cpuOf(pids);
    const shell = new PtyTerminal("/bin/sh", ["-c", command.slice(0, -1)], world.shellEnv);
    shell.sink = check.push;
    await shell.exited;
    // node-pty may report the exit before the last reads: wait for them, up to a second of silence.
    await shell.until(() => check.length >= expected, "the ceiling's tail", 1000).catch(() => {});
    return verdict((check.lastAt - check.startAt) / 1000, before);
  }

  let client: BenchClient;
  if (path === "loopback") {
    pids = { loopback: world.loopback.pid, bench: "self" };
    client = new BenchClient(world.loopbackUrl, "raw");
  } else {
    const inProcess = path === "relay-in-process";
    const binary = path === "relay-binary" || inProcess || (path === "serve" && world.binary.serve);
    const mode: ClientMode = binary ? "binary" : "json";
    // The binary client acks as the SPA does; the spec-only client never does (the relay acks as it drains).
    const ack: AckPolicy = binary ? { kind: "immediate" } : { kind: "none" };
    pids = path === "serve" ? { serve: world.serve.pid, bench: "self" } : {
      relay: world.app.pid,
      runner: (inProcess ? world.inProcessRunner : world.runner).pid,
      bench: "self",
    };
    client = await ready(
      path === "serve" ? serveClient(world, mode, ack) : await relayClient(world, mode, ack, inProcess),
    );
  }
  client.sink = check.push;
  if (path === "relay-binary" || path === "relay-json") {
    // The session took the runner's spare holder, and a new spare is starting: measured once it is up.
    const spare = await readySpare(world);
    holders = new LiveCpu(holderChildren(world.runner.pid).filter((pid) => pid !== spare));
  }
  const before = cpuOf(pids);
  if (path !== "loopback") client.stdin(command);
  const timeout = setTimeout(() => client.socket.terminate(), RUN_TIMEOUT_MS);
  const closed = await client.closed;
  clearTimeout(timeout);
  if (closed.code !== 1000) problem = `closed ${closed.code} ${closed.reason}`.trim();
  return verdict((check.lastAt - check.startAt) / 1000, before);
}

/** Waits until the runner has a spare holder listening (its socket in the runtime directory); its pid. */
async function readySpare(world: World): Promise<number | undefined> {
  const dir = `${world.dir}/sessions`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const entry of Deno.readDirSync(dir)) {
      const spare = /^spare-(\d+)\.sock$/.exec(entry.name);
      if (spare) return Number(spare[1]);
    }
    await sleep(50);
  }
  return undefined;
}

/** Keystroke echo latencies in ms: one character in, the first byte of its echo out. */
async function echoes(terminal: Terminal, count: number, intervalMs = 0): Promise<number[]> {
  const latencies: number[] = [];
  let next = performance.now();
  for (let i = 0; i < count; i++) {
    const before = terminal.bytes;
    const sent = performance.now();
    terminal.stdin(String.fromCharCode(97 + (i % 26)));
    await terminal.until(() => terminal.bytes > before, "an echo", 10_000);
    latencies.push(performance.now() - sent);
    if (i % 40 === 39) {
      const cleared = terminal.bytes;
      terminal.stdin("\x15");
      await terminal.until(() => terminal.bytes > cleared, "the line cleared", 10_000);
    }
    if (intervalMs) {
      next += intervalMs;
      await sleep(Math.max(0, next - performance.now()));
    }
  }
  return latencies;
}

/** Ends a client's shell and waits for the session to close the link. */
async function finish(client: BenchClient): Promise<void> {
  client.stdin("exit\r");
  const timer = setTimeout(() => client.socket.terminate(), 10_000);
  await client.closed;
  clearTimeout(timer);
}

/** The throughput, ratio and CPU figures of every path. */
function throughputFigures(world: World, runs: Run[]): Figure[] {
  const figures: Figure[] = [];
  const ceilings = new Map(runs.filter((r) => r.path === "ceiling").map((r) => [r.round, r.mbPerSecond]));
  const ratioGoal: Partial<Record<PathName, number>> = {
    "relay-binary": 0.85,
    "relay-json": 0.75,
    serve: 0.9,
  };
  const cpuGoal: Record<string, number> = { relay: 0.6, runner: 0.8 };
  for (const path of PATHS) {
    const label = PATH_LABEL[path];
    if ((path === "relay-binary" || path === "relay-in-process") && !world.binary.relay) {
      const goal = path === "relay-binary" ? "≥ 0.85" : null;
      figures.push(unmeasured(`${label}: share of the ceiling`, "×", goal, "not negotiated"));
      continue;
    }
    const mine = runs.filter((r) => r.path === path);
    const exact = mine.filter((r) => r.exact).length;
    const problems = [...new Set(mine.flatMap((r) => r.problem ? [r.problem] : []))];
    const exactNote = `byte-exact ${exact}/${mine.length}${
      problems.length ? `: ${problems.join("; ")}` : ""
    }`;
    const servedAs = path === "serve" ? `, ${world.binary.serve ? "binary" : "spec-only JSON"} client` : "";
    figures.push(
      figure(
        `${label}: throughput`,
        mine.map((r) => r.mbPerSecond),
        "MB/s",
        null,
        undefined,
        exactNote + servedAs,
      ),
    );
    if (path !== "ceiling") {
      const ratios = mine.map((r) => r.mbPerSecond / ceilings.get(r.round)!);
      const goal = ratioGoal[path];
      figures.push(
        figure(
          `${label}: share of the ceiling`,
          ratios,
          "×",
          goal ? `≥ ${goal}` : null,
          goal ? (m) => m >= goal : undefined,
        ),
      );
    }
    const held = "holder" in mine[0].cpu;
    for (const process of Object.keys(mine[0].cpu)) {
      // With session holders the runner's side is two processes: its goal is for both together.
      const goal = path === "relay-binary" && !(held && process === "runner") ? cpuGoal[process] : undefined;
      figures.push(
        figure(
          `${label}: CPU of ${process} per 64 MiB`,
          mine.map((r) => r.cpu[process]),
          "s",
          goal ? `≤ ${goal}` : null,
          goal ? (m) => m <= goal : undefined,
        ),
      );
    }
    if (held) {
      const goal = path === "relay-binary" ? cpuGoal.runner : undefined;
      figures.push(
        figure(
          `${label}: CPU of runner + session holder per 64 MiB`,
          mine.map((r) => r.cpu.runner + r.cpu.holder),
          "s",
          goal ? `≤ ${goal}` : null,
          goal ? (m) => m <= goal : undefined,
        ),
      );
    }
  }
  return figures;
}

/** Keystroke echo (back to back and paced) and attach figures. */
async function latencyFigures(world: World): Promise<Figure[]> {
  const { plan } = world;
  const figures: Figure[] = [];
  const echoP50: Record<string, number> = {};
  const echoP99: Record<string, number> = {};
  const paced = `${plan.paced} paced at ${plan.pacedIntervalMs} ms`;
  const pushEcho = (label: string, latencies: number[], kind: string) => {
    figures.push(figure(`keystroke echo p50, ${kind}, ${label}`, [percentile(latencies, 0.5)], "ms"));
    figures.push(figure(`keystroke echo p99, ${kind}, ${label}`, [percentile(latencies, 0.99)], "ms"));
  };

  step("keystroke echo: ceiling");
  const shell = new PtyTerminal("/bin/bash", ["-l"], world.shellEnv);
  await shell.until(() => shell.bytes > 0, "the ceiling's prompt");
  pushEcho(PATH_LABEL.ceiling, await echoes(shell, plan.backToBack), `${plan.backToBack} back to back`);
  shell.process.kill();

  const terminals: { key: string; label: string; open: () => Promise<BenchClient> }[] = [];
  if (world.binary.relay) {
    terminals.push({
      key: "relay-binary",
      label: PATH_LABEL["relay-binary"],
      open: async () => ready(await relayClient(world, "binary", { kind: "immediate" })),
    }, {
      key: "relay-in-process",
      label: PATH_LABEL["relay-in-process"],
      open: async () => ready(await relayClient(world, "binary", { kind: "immediate" }, true)),
    });
  }
  terminals.push(
    {
      key: "relay-json",
      label: PATH_LABEL["relay-json"],
      open: async () => ready(await relayClient(world, "json", { kind: "none" })),
    },
    {
      key: "serve",
      label: `${PATH_LABEL.serve} (${world.binary.serve ? "binary" : "JSON"})`,
      open: () => ready(serveClient(world, world.binary.serve ? "binary" : "json", { kind: "immediate" })),
    },
  );
  for (const { key, label, open } of terminals) {
    step(`keystroke echo: ${label}`);
    const client = await open();
    const backToBack = await echoes(client, plan.backToBack);
    pushEcho(label, backToBack, `${plan.backToBack} back to back`);
    echoP50[key] = percentile(backToBack, 0.5);
    echoP99[key] = percentile(backToBack, 0.99);
    pushEcho(label, await echoes(client, plan.paced, plan.pacedIntervalMs), paced);
    await finish(client);
  }
  const relayKey = world.binary.relay ? "relay-binary" : "relay-json";
  const relayLabel = world.binary.relay ? "binary" : "spec-only JSON (binary not negotiated)";
  figures.push(
    figure(
      `keystroke echo p50 the relay adds over serve (${relayLabel})`,
      [echoP50[relayKey] - echoP50.serve],
      "ms",
      "≤ 0.15",
      (m) => m <= 0.15,
    ),
    figure(
      `keystroke echo p99 the relay adds over serve (${relayLabel})`,
      [echoP99[relayKey] - echoP99.serve],
      "ms",
      "≤ 1",
      (m) => m <= 1,
    ),
  );
  if (world.binary.relay) {
    // The relay path to the default runner crosses its session holder too: what each of the two adds.
    for (const [name, values] of [["p50", echoP50], ["p99", echoP99]] as const) {
      figures.push(
        figure(
          `keystroke echo ${name} the relay alone adds over serve (sessions in the runner)`,
          [values["relay-in-process"] - values.serve],
          "ms",
          null,
        ),
        figure(
          `keystroke echo ${name} the session holder adds (relay, binary)`,
          [values["relay-binary"] - values["relay-in-process"]],
          "ms",
          null,
        ),
      );
    }
  }

  for (const { key, label, open } of terminals) {
    step(`attach: ${label}`);
    const times: number[] = [];
    for (let i = 0; i < plan.attaches; i++) {
      // A new session takes the runner's spare holder; the next one waits until a new spare is up, as a
      // person opening terminals one after another would.
      if (key === "relay-binary" || key === "relay-json") await readySpare(world);
      const opening = open();
      const started = performance.now();
      const client = await opening;
      times.push(client.firstOutputAt! - started);
      await finish(client);
    }
    figures.push(figure(`attach to first prompt byte, ${label}`, times, "ms", "≤ 20 (p50)", (m) => m <= 20));
  }
  return figures;
}

/** RSS of relay and runner under a `yes` flood to a client rendering 1 MB/s, then Ctrl-C to prompt. */
async function floodFigures(world: World): Promise<Figure[]> {
  const binary = world.binary.relay;
  const kind = binary ? "binary client" : "JSON client acking (binary not negotiated)";
  step(`yes flood for ${world.plan.floodSeconds} s, ${kind}`);
  const client = await ready(
    await relayClient(world, binary ? "binary" : "json", {
      kind: "rendered",
      bytesPerSecond: MB,
    }),
  );
  const spare = await readySpare(world);
  const holders = holderChildren(world.runner.pid).filter((pid) => pid !== spare);
  // The runner's side of a session is the runner and the session's holder.
  const runnerSide = () => rssBytes(world.runner.pid) + holders.reduce((sum, pid) => sum + rssBytes(pid), 0);
  const baseline = { relay: rssBytes(world.app.pid), runner: runnerSide() };
  const peak = { ...baseline };
  const sampler = setInterval(() => {
    peak.relay = Math.max(peak.relay, rssBytes(world.app.pid));
    peak.runner = Math.max(peak.runner, runnerSide());
  }, 100);
  const startBytes = client.bytes;
  client.stdin("yes\r");
  await sleep(world.plan.floodSeconds * 1000);
  const delivered = (client.bytes - startBytes) / MB / world.plan.floodSeconds;
  const interrupted = performance.now();
  client.stdin("\x03");
  client.stdin("echo STOPPED-$((6*7))\r");
  await client.until(() => client.text.includes("STOPPED-42"), "the prompt after Ctrl-C", 120_000);
  const ctrlC = performance.now() - interrupted;
  clearInterval(sampler);
  await finish(client);
  const note =
    `${kind}; received ${delivered.toFixed(1)} MB/s; baseline ${(baseline.relay / MB).toFixed(0)} MB ` +
    `relay, ${(baseline.runner / MB).toFixed(0)} MB runner`;
  return [
    figure(
      `yes flood: relay RSS growth`,
      [(peak.relay - baseline.relay) / MB],
      "MB",
      "≤ 5",
      (m) => m <= 5,
      note,
    ),
    figure(
      `yes flood: runner + session holder RSS growth`,
      [(peak.runner - baseline.runner) / MB],
      "MB",
      "≤ 20",
      (m) => m <= 20,
    ),
    figure(`yes flood: Ctrl-C to prompt (${kind})`, [ctrlC], "ms", "≤ 300", (m) => m <= 300),
  ];
}

/** RSS of a Deno process that does nothing, to say what the runner adds. */
async function bareDenoRss(dir: string): Promise<number> {
  const idle = new Child("bare deno", ["eval", "console.log('up'); setTimeout(() => {}, 600_000)"], {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    DENO_DIR: await denoDir(),
  });
  await idle.line(/^up$/);
  const rss = rssBytes(idle.pid);
  await idle.stop();
  return rss;
}

/** Whether a `mode` client of `open` gets its subprotocol; throws on any other failure. */
async function negotiates(open: () => Promise<BenchClient>): Promise<boolean> {
  try {
    const client = await ready(await open());
    const chosen = client.protocol === "coda.v2";
    await finish(client);
    return chosen;
  } catch (error) {
    if (error instanceof NotNegotiatedError) return false;
    throw error;
  }
}

/** Starts every process and measures everything. */
async function measure(plan: Plan): Promise<Figure[]> {
  const dir = await Deno.makeTempDir({ prefix: "coda-bench-" });
  const home = `${dir}/home`;
  await Deno.mkdir(home);
  const catFile = `${dir}/cat.b64`;
  const children: Child[] = [];
  try {
    step(`writing ${plan.catBytes / MiB} MiB of base64`);
    const catHash = await writeCatFile(catFile, plan.catBytes);
    const base = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: await denoDir(),
      LANG: "C.UTF-8",
      NO_COLOR: "1",
    };
    const shellEnv = { ...base, HOME: home, SHELL: "/bin/bash", PS1: "$ ", TERM: "xterm-256color" };
    const start = (name: string, args: string[], env: Record<string, string>) => {
      if (plan.profileDir && name !== "loopback") {
        args = [args[0], "--cpu-prof", `--cpu-prof-dir=${plan.profileDir}/${name}`, ...args.slice(1)];
      }
      const child = new Child(name, args, env);
      children.push(child);
      return child;
    };

    step("starting the app (API + relay)");
    const port = freePort();
    const appUrl = `http://127.0.0.1:${port}`;
    const app = start("app", ["run", ...APP_FLAGS, `${ROOT}api/main.ts`], {
      ...base,
      HOME: dir,
      HOST: "127.0.0.1",
      PORT: String(port),
      DEVMODE_DATA_DIR: `${dir}/data`,
      DEVMODE_PUBLIC_URL: appUrl,
      DEVMODE_RELAY_URL: `ws://127.0.0.1:${port}`,
    });
    await app.line(/listening on/);
    const { cookie } = await signup(appUrl);
    const paired = await pairRunner(appUrl, cookie);
    const pairedInProcess = await pairRunner(appUrl, cookie);

    step("starting the runners, serve and the loopback");
    const runnerEnv = { ...shellEnv, APP_URL: appUrl, CODA_RUNNER_CONFIG: `${dir}/runner.json` };
    const runner = start("runner", ["run", ...RUNNER_FLAGS, `${ROOT}runner/main.ts`], {
      ...runnerEnv,
      RELAY_URL: paired.relayUrl,
      RUNNER_TOKEN: paired.runnerToken,
      ...(plan.profileDir ? { CODA_HOLDER_CPU_PROF_DIR: `${plan.profileDir}/holder` } : {}),
    });
    const inProcessRunner = start("runner-in-process", ["run", ...RUNNER_FLAGS, `${ROOT}runner/main.ts`], {
      ...runnerEnv,
      CODA_RUNNER_CONFIG: `${dir}/runner-in-process.json`,
      TTY_SYNC: "off",
      RELAY_URL: pairedInProcess.relayUrl,
      RUNNER_TOKEN: pairedInProcess.runnerToken,
    });
    const serve = start(
      "serve",
      ["run", ...RUNNER_FLAGS, `${ROOT}runner/main.ts`, "serve", "--port", String(freePort())],
      { ...runnerEnv, CODA_RUNNER_CONFIG: `${dir}/serve.json` },
    );
    const loopback = start("loopback", ["run", "-A", `${ROOT}bench/loopback_server.ts`, catFile], base);
    const [serveLine, loopbackLine] = await Promise.all([
      serve.line(/(ws:\/\/\S+\/client\?token=\S+)/),
      loopback.line(/^listening (\d+)$/),
    ]);
    const world: World = {
      plan,
      dir,
      catFile,
      catHash,
      appUrl,
      relayUrl: paired.relayUrl,
      cookie,
      serveUrl: serveLine[1],
      loopbackUrl: `ws://127.0.0.1:${loopbackLine[1]}/`,
      app,
      runner,
      inProcessRunner,
      runnerIds: { held: paired.runnerId, inProcess: pairedInProcess.runnerId },
      serve,
      loopback,
      shellEnv,
      binary: { relay: false, serve: false },
    };

    // The first session waits for the runner to come online; its end leaves the runner idle.
    step("waiting for the runner; negotiating coda.v2");
    await finish(await ready(await relayClient(world, "json", { kind: "none" }), 120_000));
    await finish(await ready(await relayClient(world, "json", { kind: "none" }, true), 120_000));
    const runnerIdle = rssBytes(runner.pid);
    world.binary.relay = await negotiates(() => relayClient(world, "binary", { kind: "immediate" }));
    world.binary.serve = await negotiates(() =>
      Promise.resolve(serveClient(world, "binary", { kind: "immediate" }))
    );
    step(
      `coda.v2: relay ${world.binary.relay ? "yes" : "not negotiated"}, serve ${
        world.binary.serve ? "yes" : "no"
      }`,
    );

    const paths = PATHS.filter((p) =>
      (p !== "relay-binary" && p !== "relay-in-process") || world.binary.relay
    );
    const runs: Run[] = [];
    const measures = (part: BenchPart) => plan.only === undefined || plan.only === part;
    for (let round = -plan.warmups; round < plan.rounds && measures("throughput"); round++) {
      const order = paths.map((_, i) => paths[(i + Math.max(0, round)) % paths.length]);
      for (const path of order) {
        step(`${round < 0 ? "warm-up" : `round ${round + 1}/${plan.rounds}`}: ${PATH_LABEL[path]}`);
        const run = await throughput(world, path, round);
        if (round >= 0) runs.push(run);
      }
    }
    const figures = measures("throughput") ? throughputFigures(world, runs) : [];
    if (measures("latency")) figures.push(...await latencyFigures(world));
    if (measures("flood")) figures.push(...await floodFigures(world));
    if (plan.only !== undefined) return figures;
    figures.push(...await capacityFigures(plan.capacity, dir));
    const bare = await bareDenoRss(dir);
    figures.push(
      figure(
        "runner idle RSS",
        [runnerIdle / MB],
        "MB",
        "reported",
        undefined,
        `a bare Deno process: ${(bare / MB).toFixed(0)} MB`,
      ),
      figure(
        "runner idle RSS over a bare Deno",
        [(runnerIdle - bare) / MB],
        "MB",
        "reported (ttyd holds 5 MB)",
      ),
    );
    return figures;
  } finally {
    for (const child of children.reverse()) await child.stop();
    // The sessions' holders outlive the stopped runner by design; the bench leaves none behind.
    await endHolders(`${dir}/sessions`, silentLogger);
    await Deno.remove(dir, { recursive: true });
  }
}

/** `--only capacity`: the relay's capacity figures alone. */
async function capacityOnly(plan: Plan): Promise<Figure[]> {
  const dir = await Deno.makeTempDir({ prefix: "coda-bench-" });
  try {
    return await capacityFigures(plan.capacity, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      out: { type: "string" },
      "cpu-prof": { type: "string" },
      only: { type: "string" },
    },
    strict: true,
  });
  const plan = {
    ...(values.quick ? QUICK : FULL),
    // Absolute: the runner hands it to its holders, which run in `/`.
    profileDir: values["cpu-prof"] === undefined ? undefined : resolve(values["cpu-prof"]),
    only: values.only as BenchPart | undefined,
  };
  const out = values.out ?? "test-output/bench.jsonl";
  const started = performance.now();
  if (values.only !== undefined && !(BENCH_PARTS as readonly string[]).includes(values.only)) {
    console.error(`bench: --only takes one of ${BENCH_PARTS.join(", ")}; got "${values.only}"`);
    Deno.exit(2);
  }
  const figures = values.only === "capacity" ? await capacityOnly(plan) : await measure(plan);
  const seconds = (performance.now() - started) / 1000;
  console.log(formatTable(figures));
  console.log(
    `\n${new Date().toISOString()}, Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ` +
      `${values.quick ? "--quick, " : ""}${seconds.toFixed(0)} s`,
  );
  const dirEnd = out.lastIndexOf("/");
  if (dirEnd > 0) await Deno.mkdir(out.slice(0, dirEnd), { recursive: true });
  await Deno.writeTextFile(out, figures.map((f) => JSON.stringify(f)).join("\n") + "\n");
  if (plan.profileDir) {
    for (const { process, files, top } of await summarizeProfiles(plan.profileDir)) {
      console.log(`\n${process} (${files === 1 ? "1 profile" : `${files} profiles, merged`}), self time:`);
      for (const entry of top) {
        console.log(`  ${(entry.selfShare * 100).toFixed(1).padStart(5)} %  ${entry.name}`);
      }
    }
  }
  // node-pty's handles keep the event loop alive after its shells are gone.
  Deno.exit(0);
}
