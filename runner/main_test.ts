/**
 * The CLI as users run it: `deno run runner/main.ts` as a subprocess against
 * the real app and relay.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  apiJson,
  approvePairing,
  createSession,
  revokeRunner,
  signup,
  startTestApp,
} from "../api/testing.ts";
import { TestClient, waitFor } from "./_testing.ts";

const MAIN = join(import.meta.dirname!, "main.ts");

/** A running CLI process with its output collected as text. */
class Cli {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;

  constructor(args: string[], env: Record<string, string>, options: { stdin?: "piped" } = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      env,
      clearEnv: true,
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this[key] += decoder.decode(chunk, { stream: true });
    };
    const pumps = Promise.all([pump(this.child.stdout, "stdout"), pump(this.child.stderr, "stderr")]);
    this.status = pumps.then(() => this.child.status);
  }

  /** Types `line` and Enter on the CLI's standard input (started with `stdin: "piped"`). */
  async type(line: string): Promise<void> {
    const writer = this.child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(`${line}\n`));
    writer.releaseLock();
  }

  async kill(signal: Deno.Signal = "SIGINT"): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
    return await this.status;
  }
}

Deno.test("CLI: pair end to end, store the credentials safely, reuse them, stop on revoke", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config", "coda-runner", "config.json");
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    SHELL: "/bin/bash",
    APP_URL: app.url,
    RELAY_URL: app.relayUrl,
    CODA_RUNNER_CONFIG: configPath,
    // Unattended, as an install script runs it: the pairing is kept without asking.
    CODA_RUNNER_ASSUME_YES: "1",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno"),
  };
  const processes: Cli[] = [];
  const cli = (args: string[]) => {
    const started = new Cli(args, env);
    processes.push(started);
    return started;
  };
  try {
    const user = await signup(app.url);
    const first = cli([]);
    const code = await pairingCode(first);
    assert(first.stdout.includes("█"), "a QR code is drawn");
    await approvePairing(app.url, user.cookie, code);
    await waitFor(
      () => first.stdout.includes(`Paired with ${user.email}`),
      "the pairing to complete",
      30_000,
    );
    await waitFor(() => first.stderr.includes("connected to the relay"), "the relay link", 30_000);

    const fileMode = (await Deno.stat(configPath)).mode! & 0o777;
    const dirMode = (await Deno.stat(dirname(configPath))).mode! & 0o777;
    assertEquals([fileMode.toString(8), dirMode.toString(8)], ["600", "700"]);
    const stored = JSON.parse(await Deno.readTextFile(configPath));
    assertEquals(stored.version, 1);
    assertEquals(stored.credentials.email, user.email);
    assertEquals(stored.credentials.appUrl, app.url);
    assert(stored.credentials.runnerToken.split(".").length === 3);
    assert(
      !first.stdout.includes(stored.credentials.runnerToken) &&
        !first.stderr.includes(stored.credentials.runnerToken),
    );
    const runnerId: string = stored.credentials.runnerId;

    const session = await createSession(app.url, user.cookie, { ideaId: "idea-1", runnerId });
    const client = new TestClient(`${app.relayUrl}/client?token=${session.token}`);
    await client.opened;
    client.send({ type: "stdin", sessionId: session.sessionId, data: "echo cli-$((9 * 9))\r" });
    await client.waitForOutput("cli-81");
    assertEquals((await first.kill("SIGINT")).code, 130);
    await waitFor(() => client.metas().includes("coda:relay:offline"), "the relay to see the runner go");
    await client.close();

    const status = cli(["status"]);
    assertEquals((await status.status).code, 0);
    assert(status.stdout.includes(`Account:  ${user.email}`));
    assert(status.stdout.includes("Online:   yes"));

    const second = cli([]);
    await waitFor(
      () => second.stderr.includes("connected to the relay"),
      "the stored token to be reused",
      60_000,
    );
    assert(!second.stdout.includes("not paired"));
    await revokeRunner(app.url, user.cookie, runnerId);
    const revoked = await second.status;
    assertEquals(revoked.code, 3);
    assert(second.stderr.includes("Run `coda-runner pair`"), second.stderr);
  } finally {
    for (const process of processes) await process.kill("SIGKILL");
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: bad usage exits 2, a corrupt config file says how to recover", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: dir, CODA_RUNNER_CONFIG: configPath };
  try {
    const bad = new Cli(["frobnicate"], env);
    assertEquals((await bad.status).code, 2);
    assert(bad.stderr.includes('unknown command "frobnicate"'));
    const flag = new Cli(["--nope"], env);
    assertEquals((await flag.status).code, 2);
    await Deno.writeTextFile(configPath, "{ not json");
    const corrupt = new Cli(["status"], env);
    assertEquals((await corrupt.status).code, 1);
    assert(corrupt.stderr.includes("Run `coda-runner pair`"), corrupt.stderr);
    assert(!corrupt.stderr.includes("    at "), "no stack trace");
    const version = new Cli(["--version"], env);
    assertEquals((await version.status).code, 0);
    assert(/^coda-runner \d+\.\d+\.\d+/.test(version.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: a code approved by someone else's account is refused at the prompt and revoked", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    SHELL: "/bin/bash",
    APP_URL: app.url,
    RELAY_URL: app.relayUrl,
    CODA_RUNNER_CONFIG: configPath,
  };
  const processes: Cli[] = [];
  const cli = (args: string[]) => {
    const started = new Cli(args, env, { stdin: "piped" });
    processes.push(started);
    return started;
  };
  try {
    const mallory = await signup(app.url, "mallory@example.test");
    const ada = await signup(app.url, "ada@example.test");
    const victim = cli([]);
    // The code leaked; Mallory approves it first.
    await approvePairing(app.url, mallory.cookie, await pairingCode(victim));
    await waitFor(
      () => victim.stdout.includes("Paired with mallory@example.test — keep? [Y/n]"),
      "the confirmation prompt",
      30_000,
    );
    assert(!victim.stderr.includes("connected to the relay"), "nothing is served before the answer");
    await victim.type("n");
    assertEquals((await victim.status).code, 1);
    assert(victim.stderr.includes("mallory@example.test can no longer reach this machine"), victim.stderr);
    assert(!victim.stderr.includes("connected to the relay"));
    assertEquals(await Deno.stat(configPath).then(() => true, () => false), false, "nothing stored");
    const listed = await apiJson<unknown[]>(app.url, "/api/devmode/runners", { cookie: mallory.cookie });
    assertEquals(listed, [], "the pairing is revoked in the app");

    // Ada's own approval, confirmed with Enter, is kept and served.
    const own = cli(["pair"]);
    await approvePairing(app.url, ada.cookie, await pairingCode(own));
    await waitFor(() => own.stdout.includes("Paired with ada@example.test — keep?"), "the prompt", 30_000);
    await own.type("");
    assertEquals((await own.status).code, 0);
    const stored = JSON.parse(await Deno.readTextFile(configPath));
    assertEquals(stored.credentials.email, "ada@example.test");
  } finally {
    for (const process of processes) await process.kill("SIGKILL");
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The pairing code `run` printed, once it has. */
function pairingCode(run: Cli): Promise<string> {
  return waitFor(() => /devmode\/pair\?code=([A-Z0-9-]+)/.exec(run.stdout)?.[1], "a pairing code", 60_000);
}

/** A running app and `coda-runner pair` started against it with a fresh home; disposing stops both. */
async function pairingRun() {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const pairing = new Cli(["pair"], {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    APP_URL: app.url,
    CODA_RUNNER_CONFIG: configPath,
  });
  return {
    app,
    pairing,
    /** Whether the runner stored a configuration. */
    stored: () => Deno.stat(configPath).then(() => true, () => false),
    async [Symbol.asyncDispose]() {
      await pairing.kill("SIGKILL");
      await app.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("CLI: with no one to answer and no --yes, a new pairing is not kept", async () => {
  await using run = await pairingRun();
  const user = await signup(run.app.url);
  await approvePairing(run.app.url, user.cookie, await pairingCode(run.pairing));
  assertEquals((await run.pairing.status).code, 1);
  assert(run.pairing.stderr.includes("pass --yes or set CODA_RUNNER_ASSUME_YES=1"), run.pairing.stderr);
  assertEquals(await run.stored(), false);
  assertEquals(await apiJson<unknown[]>(run.app.url, "/api/devmode/runners", { cookie: user.cookie }), []);
});

Deno.test("CLI: Ctrl-C while waiting for approval exits 130 and stores nothing", async () => {
  await using run = await pairingRun();
  await pairingCode(run.pairing);
  assertEquals((await run.pairing.kill("SIGINT")).code, 130);
  assertEquals(await run.stored(), false);
});

Deno.test("CLI: a RUNNER_TOKEN is never sent to an app nobody named (no APP_URL, nothing stored)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    CODA_RUNNER_CONFIG: join(dir, "config.json"),
    RUNNER_TOKEN: "header.payload.signature",
    RELAY_URL: "ws://127.0.0.1:9",
  };
  try {
    const status = new Cli(["status"], env);
    await status.status;
    assert(status.stdout.includes("App:      unknown (set APP_URL to record sessions)"), status.stdout);
    const named = new Cli(["status"], { ...env, APP_URL: "http://127.0.0.1:9" });
    await named.status;
    assert(named.stdout.includes("App:      http://127.0.0.1:9"), named.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
