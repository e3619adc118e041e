/**
 * Session holders as users meet them: the CLI runner as a subprocess against
 * the real app and relay, SIGKILLed, restarted, upgraded, logged out; shells
 * and holders counted in /proc.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createSession, signup, type StartedApp, startTestApp, type TestUser } from "@coda/api/testing";
import { Cli, cliEnv, MAIN, storePairedRunner } from "./cli_testing.ts";
import { TestClient, waitFor } from "./testing.ts";
import { hasTmuxSession } from "./tmux.ts";
import { holderSocketPath } from "./holder_dir.ts";
import { HolderConnection } from "./holder_connection.ts";
import { spawnHolder } from "./holder_pool.ts";
import { RUNNER_PERMISSIONS } from "./permissions.ts";
import { existsSync } from "node:fs";

const ROOT = join(import.meta.dirname!, "..");

/** Whether process `pid` exists (and is not a zombie). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat !== undefined && !/^\d+ \(.*\) Z/.test(stat);
}

/** Pids of the session holders listening in `dir`. */
async function holderPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await readFile(`/proc/${entry.name}/cmdline`, "utf8").catch(() => "");
    const args = cmdline.split("\0");
    const at = args.indexOf("hold");
    if (at >= 0 && args[at + 1] === "--dir" && args[at + 2] === dir) pids.push(Number(entry.name));
  }
  return pids;
}

interface Setup {
  app: StartedApp;
  user: TestUser;
  dir: string;
  runtimeDir: string;
  env: Record<string, string>;
  runnerId: string;
  runners: Cli[];
  /** Starts a runner (from `main`, default this checkout) and waits for its relay link. */
  runner(main?: string): Promise<Cli>;
  /** A session of this runner, with a client attached whose shell answered (`binary`: a coda.v2 client). */
  open(options?: { binary?: boolean }): Promise<{ sessionId: string; client: TestClient }>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(extraEnv: Record<string, string> = {}): Promise<Setup> {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-holder-" });
  const configPath = join(dir, "config.json");
  const runtimeDir = join(dir, "sessions");
  const user = await signup(app.url);
  const paired = await storePairedRunner(app, user, configPath);
  const env = { ...cliEnv(app, dir, configPath), ...extraEnv };
  const runners: Cli[] = [];
  const clients: TestClient[] = [];
  return {
    app,
    user,
    dir,
    runtimeDir,
    env,
    runnerId: paired.runnerId,
    runners,
    async runner(main) {
      const runner = new Cli([], env, { main });
      runners.push(runner);
      await waitFor(() => runner.stderr.includes("connected to the relay"), "the relay link", 60_000);
      return runner;
    },
    async open(options = {}) {
      const { sessionId, token } = await createSession(app.url, user.cookie, {
        ideaId: "idea-1",
        runnerId: paired.runnerId,
      });
      const client = new TestClient(`${app.relayUrl}/client?token=${token}`, undefined, options);
      clients.push(client);
      await client.opened;
      client.send({ type: "stdin", sessionId, data: "echo up-$((6 * 7))\r" });
      await client.waitForOutput("up-42").catch((error) => {
        throw new Error(`${error.message}; the runners said:\n${runners.map((r) => r.stderr).join("\n")}`);
      });
      return { sessionId, client };
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) await client.close();
      for (const runner of runners) await runner.kill("SIGKILL");
      // SIGTERM: a holder ends its shell and waits for it, so nothing writes into `dir` once they are gone.
      const holders = await holderPids(runtimeDir);
      for (const pid of holders) {
        try {
          Deno.kill(pid, "SIGTERM");
        } catch {
          // It ended between the listing and the kill (a spare going with its runner).
        }
      }
      await waitFor(
        async () => !(await Promise.all(holders.map(alive))).includes(true),
        "every holder ended",
      );
      await app.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `echo`es a marker with the shell's pid and `$CODA_MARK`; resolves both. */
async function shellFacts(client: TestClient, sessionId: string, tag: string): Promise<string> {
  client.send({ type: "stdin", sessionId, data: `echo ${tag}=$$:$CODA_MARK.\r` });
  // The typed command shows `$$`, not digits: only the echoed line matches.
  const pattern = new RegExp(`${tag}=(\\d+:[^.\\r\\n]*)\\.`);
  return (await waitFor(() => pattern.exec(client.output())?.[1], `${tag} facts`))!;
}

/** The lines `seq 1 count` prints, as the terminal shows them. */
function seqOutput(count: number): string {
  let text = "";
  for (let i = 1; i <= count; i++) text += `${i}\r\n`;
  return text;
}

Deno.test("holders: a SIGKILLed runner's shell lives on; the next runner re-adopts it, byte-exact", async () => {
  await using s = await setup();
  const first = await s.runner();
  const { sessionId, client } = await s.open();
  client.send({ type: "stdin", sessionId, data: "export CODA_MARK=kept-$((6 * 7))\r" });
  const before = await shellFacts(client, sessionId, "before");
  assert(before.endsWith(":kept-42"), before);

  // A stream of several MB is on its way when the runner dies.
  const count = 1_500_000;
  client.send({ type: "stdin", sessionId, data: `seq 1 ${count}; echo stream-done\r` });
  await waitFor(() => client.output().length > 200_000, "the stream under way");
  await first.kill("SIGKILL");
  assert(!client.output().includes("\r\nstream-done"), "the runner died mid-stream");

  await s.runner();
  await client.waitForOutput("\r\nstream-done", 60_000);
  const output = client.output();
  assertEquals(
    output.slice(output.search(/1\r\n2\r\n3\r\n/), output.indexOf("\r\nstream-done") + 2),
    seqOutput(count),
    "every byte once, in order",
  );
  assert(!client.metas().some((meta) => meta.startsWith("coda:gap:")), "no gap");
  assertEquals(await shellFacts(client, sessionId, "after"), before, "the same shell and its variables");
});

Deno.test("holders: a shell that exits while no runner is there: the next runner's client gets the output and the exit", async () => {
  await using s = await setup();
  const first = await s.runner();
  const { sessionId, client } = await s.open();
  const shellPid = Number((await shellFacts(client, sessionId, "pid")).split(":")[0]);
  client.send({
    type: "stdin",
    sessionId,
    data: "while [ ! -e go ]; do sleep 0.02; done; echo after-$((6 * 7)); exit 3\r",
  });
  await client.waitForOutput("exit 3");
  await first.kill("SIGKILL");
  await Deno.writeTextFile(join(s.dir, "go"), "");
  await waitFor(async () => !(await alive(shellPid)), "the shell to exit with no runner");

  await s.runner();
  const closed = await client.closed;
  assertEquals([closed.code, closed.reason], [1000, "session ended"], client.metas().join());
  assert(client.output().includes("after-42"), "the output it missed");
  assert(client.metas().includes("coda:exit:3"), client.metas().join());
  assert(!client.metas().some((meta) => meta.startsWith("coda:ended:")), client.metas().join());
  const socket = holderSocketPath(s.runtimeDir, sessionId);
  await waitFor(() => !existsSync(socket), "the session's holder to end once it told");
});

/** A copy of this checkout as another build: its version (and holder protocol) changed. */
async function otherBuild(
  dir: string,
  options: { version: string; holderProtocol?: number },
): Promise<string> {
  const copy = join(dir, "build");
  for (const part of ["deno.json", "deno.lock", "import_map.json", "api", "relay", "runner", "spa"]) {
    await cp(join(ROOT, part), join(copy, part), {
      recursive: true,
      filter: (source) => !/\/(dist|node_modules|test-output)$/.test(source),
    });
  }
  await symlink(join(ROOT, "node_modules"), join(copy, "node_modules"));
  await writeFile(join(copy, "runner", "version.ts"), `export const VERSION = "${options.version}";\n`);
  if (options.holderProtocol !== undefined) {
    const path = join(copy, "runner", "holder_protocol.ts");
    const source = await readFile(path, "utf8");
    await writeFile(
      path,
      source.replace(
        /HOLDER_PROTOCOL_VERSION = \d+;/,
        `HOLDER_PROTOCOL_VERSION = ${options.holderProtocol};`,
      ),
    );
  }
  return join(copy, "runner", "main.ts");
}

Deno.test("holders: an upgraded runner re-adopts the old build's holders; another holder protocol is ended", async (t) => {
  await t.step("same holder protocol: the new build carries on", async () => {
    await using s = await setup();
    const old = await s.runner(await otherBuild(s.dir, { version: "0.0.9-old" }));
    const { sessionId, client } = await s.open();
    client.send({ type: "stdin", sessionId, data: "export CODA_MARK=upgraded\r" });
    const before = await shellFacts(client, sessionId, "before");
    await old.kill("SIGTERM");
    const upgraded = await s.runner();
    await waitFor(() => upgraded.stderr.includes("re-adopted a session"), "the re-adoption");
    assertEquals(
      await shellFacts(client, sessionId, "after"),
      before,
      `old runner:\n${old.stderr}\nnew runner:\n${upgraded.stderr}\nmetas: ${client.metas().join(" ")}`,
    );
  });
  await t.step("another holder protocol: the new build ends it, shell and all, and says so", async () => {
    await using s = await setup();
    const old = await s.runner(await otherBuild(s.dir, { version: "0.0.8-ancient", holderProtocol: 999 }));
    const { sessionId, client } = await s.open();
    const [shellPid] = (await shellFacts(client, sessionId, "before")).split(":").map(Number);
    const holders = await holderPids(s.runtimeDir);
    await old.kill("SIGTERM");
    const upgraded = await s.runner();
    assert(upgraded.stderr.includes("speaks another holder protocol"), upgraded.stderr);
    assert(upgraded.stderr.includes("0.0.8-ancient"), upgraded.stderr);
    await waitFor(async () => !await alive(shellPid), "the old shell gone");
    await waitFor(async () => !(await Promise.all(holders.map(alive))).includes(true), "its holder gone");
    await waitFor(() => client.metas().includes("coda:ended:runner-restarted"), "the client told");
  });
});

Deno.test("holders: reaped after the grace with no runner, when the shell exits, and on logout; status lists them", async () => {
  await using s = await setup({ DEVMODE_SESSION_GRACE: "4s" });
  const runner = await s.runner();
  const one = await s.open();
  const two = await s.open();
  const [shellOne] = (await shellFacts(one.client, one.sessionId, "one")).split(":").map(Number);
  const [shellTwo] = (await shellFacts(two.client, two.sessionId, "two")).split(":").map(Number);
  // Two sessions, and the spare ready for a third.
  await waitFor(async () => (await holderPids(s.runtimeDir)).length === 3, "two holders and a spare");

  const status = new Cli(["status"], s.env);
  await status.status;
  assert(status.stdout.includes("Sessions: 2 held"), status.stdout);
  assert(status.stdout.includes(`${one.sessionId}  shell pid ${shellOne}`), status.stdout);

  // The shell exits: its holder goes with it.
  two.client.send({ type: "stdin", sessionId: two.sessionId, data: "exit\r" });
  await waitFor(async () => !await alive(shellTwo), "the exited shell");
  await waitFor(async () => (await holderPids(s.runtimeDir)).length === 2, "its holder gone");

  // No runner for the grace period (its client still waiting at the relay): holder and shell end; the
  // spare goes with its runner.
  await runner.kill("SIGKILL");
  assert(await alive(shellOne), "the shell outlives its runner");
  await waitFor(async () => !await alive(shellOne), "the orphaned session ended after the grace");
  await waitFor(
    async () => (await holderPids(s.runtimeDir)).length === 0,
    "its holder and the spare gone",
    30_000,
  );

  // Logout ends held sessions at once.
  await s.runner();
  const three = await s.open();
  const [shellThree] = (await shellFacts(three.client, three.sessionId, "three")).split(":").map(Number);
  for (const running of s.runners) await running.kill("SIGKILL");
  const logout = new Cli(["logout"], s.env);
  await logout.status;
  assert(logout.stdout.includes("Ended 1 session kept by session holders"), logout.stdout + logout.stderr);
  assert(!await alive(shellThree));
  await waitFor(async () => (await holderPids(s.runtimeDir)).length === 0, "every holder gone", 30_000);
});

Deno.test("holders: TTY_SYNC=tmux runs tmux in the holder; a stopped runner's tmux session ends after the grace", async () => {
  const socket = `coda-test-${crypto.randomUUID().slice(0, 8)}`;
  await using s = await setup({ TTY_SYNC: "tmux", CODA_TMUX_SOCKET: socket, DEVMODE_SESSION_GRACE: "3s" });
  try {
    const runner = await s.runner();
    const { sessionId, client } = await s.open();
    client.send({ type: "stdin", sessionId, data: "export CODA_MARK=in-tmux\r" });
    const before = await shellFacts(client, sessionId, "before");
    const tmux = { binary: "tmux", socket };
    assert(await hasTmuxSession(tmux, sessionId));
    await runner.kill("SIGKILL");
    const next = await s.runner();
    assertEquals(await shellFacts(client, sessionId, "after"), before, "re-adopted across a SIGKILL");
    await client.close();
    await next.kill("SIGINT");
    await waitFor(
      async () => !await hasTmuxSession(tmux, sessionId),
      "the tmux session ended after the grace",
    );
  } finally {
    await new Deno.Command("tmux", { args: ["-L", socket, "kill-server"], stdout: "null", stderr: "null" })
      .output();
  }
});

Deno.test("holders: where no holder can run, sessions run in the runner, which says so once", async () => {
  await using s = await setup();
  const open = join(s.dir, "open-to-all");
  await Deno.mkdir(open, { mode: 0o755 });
  await Deno.chmod(open, 0o755);
  s.env.CODA_RUNTIME_DIR = open;
  const runner = await s.runner();
  const { sessionId, client } = await s.open();
  client.send({ type: "stdin", sessionId, data: "echo local-$((6 * 7))\r" });
  await client.waitForOutput("local-42");
  assertEquals(runner.stderr.split("sessions run inside the runner").length, 2, runner.stderr);
  assert(runner.stderr.includes("open to other users"), runner.stderr);
  assertEquals(await holderPids(open), []);
});

Deno.test("holders: files go in and out of a held session, before and after its runner is SIGKILLed", async () => {
  await using s = await setup();
  const first = await s.runner();
  const { sessionId, client } = await s.open({ binary: true });
  const data = crypto.getRandomValues(new Uint8Array(60_000));
  const blob = new Uint8Array(2 * 1024 * 1024);
  for (let at = 0; at < blob.length; at += data.length) blob.set(data.subarray(0, blob.length - at), at);
  const done = await client.upload(sessionId, 1, "blob.bin", blob);
  assertEquals(done?.type, "upload-done", JSON.stringify(done));
  await first.kill("SIGKILL");
  await s.runner();
  client.send({ type: "stdin", sessionId, data: "sha256sum blob.bin; coda-download blob.bin\r" });
  await client.waitForOutput(`${createHash("sha256").update(blob).digest("hex")}  blob.bin`, 60_000);
  await client.next((m) => m.type === "download-offer", "the offer");
  assertEquals(await client.download(sessionId, 1), blob);
});

Deno.test("holders: a second runner started with the same pairing takes the link and the holders over", async () => {
  await using s = await setup();
  const first = await s.runner();
  const { sessionId, client } = await s.open();
  client.send({ type: "stdin", sessionId, data: "export CODA_MARK=taken-over\r" });
  const before = await shellFacts(client, sessionId, "before");
  const second = await s.runner();
  assertEquals((await first.status).code, 3, "the first runner stops: another took its link");
  assert(second.stderr.includes("re-adopted a session"), second.stderr);
  assertEquals(await shellFacts(client, sessionId, "after"), before, "the same shell, through the second");
  assert(!client.metas().some((meta) => meta.startsWith("coda:exit") || meta.startsWith("coda:error")));
  assert(!first.stderr.includes("exited without ending its session"), first.stderr);
});

Deno.test("holders: a spare assigned a session before its settings says why and ends; nothing runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-holder-" });
  try {
    const command = {
      program: Deno.execPath(),
      args: ["run", ...RUNNER_PERMISSIONS, MAIN],
    };
    const path = await spawnHolder(command, dir);
    const holder = await HolderConnection.connect(path);
    const logs: string[] = [];
    const closed = Promise.withResolvers<void>();
    holder.join({
      onMessage: (message) => {
        if (message.type === "holder-log") logs.push(`${message.level}: ${message.message}`);
      },
      onOutput: () => {},
      onClose: () => closed.resolve(),
    });
    holder.send({ type: "holder-assign", sessionId: "unprepared-session" });
    holder.send({ type: "attach", sessionId: "unprepared-session", clientId: "c1" });
    await closed.promise;
    assertEquals(logs, ["warn: a session assigned to a spare that was never prepared; ending it"]);
    await waitFor(async () => (await holderPids(dir)).length === 0, "the holder gone");
    assert(!existsSync(holderSocketPath(dir, "unprepared-session")), "no socket under the session's name");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
