/**
 * The CLI as users run it: `deno run runner/main.ts` as a subprocess against
 * the real app and relay.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import pty from "@lydell/node-pty";
import {
  apiJson,
  approvePairing,
  createSession,
  revokeRunner,
  signup,
  type StartedApp,
  startTestApp,
  type TestUser,
} from "@coda/api/testing";
import { browserOpener } from "./main.ts";
import { Cli, cliEnv, localEnv, MAIN, storePairedRunner } from "./cli_testing.ts";
import { OPEN_PROMPT } from "./pairing.ts";
import { hasTmuxSession, type TmuxSettings } from "./tmux.ts";
import { endHolders, silentLogger, TestClient, waitFor } from "./testing.ts";

Deno.test("CLI: pair end to end, store the credentials safely, reuse them, stop on revoke", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config", "coda-runner", "config.json");
  const env = {
    ...cliEnv(app, dir, configPath),
    // Unattended, as an install script runs it: the pairing is kept without asking.
    CODA_RUNNER_ASSUME_YES: "1",
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
    assert(!first.stdout.includes(OPEN_PROMPT), "no Enter to press without a terminal");
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

Deno.test("CLI: Cancel on the approve page stops `coda-runner pair` at its next poll, exit 1", async () => {
  await using run = await pairingRun();
  const user = await signup(run.app.url);
  const code = await pairingCode(run.pairing);
  await apiJson(run.app.url, "/api/devmode/pair/deny", { cookie: user.cookie, body: { code } });
  assertEquals((await run.pairing.status).code, 1);
  assert(run.pairing.stderr.includes("The request was denied in the browser."), run.pairing.stderr);
  assert(!run.pairing.stdout.includes("Here is a fresh one"), run.pairing.stdout);
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

/** The runners the app lists for `user`. */
function listedRunners(app: StartedApp, user: TestUser): Promise<{ runnerId: string }[]> {
  return apiJson<{ runnerId: string }[]>(app.url, "/api/devmode/runners", { cookie: user.cookie });
}

Deno.test("CLI: in an 80×24 terminal the link and code stay on screen, and Enter opens the browser", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const opened = join(dir, "opened.txt");
  const browser = join(dir, "browser.sh");
  await Deno.writeTextFile(browser, `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`, { mode: 0o755 });
  let screen = "";
  const exit = Promise.withResolvers<number>();
  const terminal = pty.spawn(Deno.execPath(), ["run", "-A", MAIN, "pair"], {
    name: "xterm-256color",
    cols: 80,
    rows: 24,
    cwd: dir,
    // No DISPLAY: only $BROWSER can open the link.
    env: { ...cliEnv(app, dir, configPath), BROWSER: browser },
  });
  terminal.onData((data) => screen += data);
  terminal.onExit(({ exitCode }) => exit.resolve(exitCode));
  try {
    const user = await signup(app.url);
    await waitFor(() => screen.includes("Waiting for approval"), "the pairing screen", 60_000);
    const lines = screen.replaceAll("\r", "").split("\n");
    const link = /\S+devmode\/pair\?code=[A-Z0-9-]+/.exec(screen)![0];
    const code = new URL(link).searchParams.get("code")!;
    assert(lines.every((line) => [...line].length <= 80), "no line wraps");
    const visible = lines.slice(-24);
    const qrTop = visible.findIndex((line) => line.includes("█"));
    assert(
      qrTop >= 0 && visible.slice(0, qrTop).every((line) => !line.includes("█")),
      "the whole QR code shows",
    );
    assert(visible.some((line) => line.includes(link)), "the link is on screen");
    assert(visible.some((line) => line.includes(code.split("").join(" "))), "the code is on screen");
    assert(visible.some((line) => line.includes(OPEN_PROMPT)), "Enter is offered");

    terminal.write("\r");
    assertEquals(await waitFor(() => Deno.readTextFile(opened).catch(() => undefined), "the browser"), link);
    await approvePairing(app.url, user.cookie, code);
    await waitFor(() => screen.includes(`Paired with ${user.email} — keep? [Y/n]`), "the prompt", 30_000);
    terminal.write("y\r");
    assertEquals(await exit.promise, 0);
    assertEquals(JSON.parse(await Deno.readTextFile(configPath)).credentials.email, user.email);
  } finally {
    try {
      terminal.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: the browser is offered only where one can be opened", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  try {
    await Deno.writeTextFile(join(dir, "xdg-open"), "#!/bin/sh\n", { mode: 0o755 });
    assertEquals(await browserOpener({ PATH: dir, DISPLAY: ":0" }, "linux"), ["xdg-open"]);
    assertEquals(await browserOpener({ PATH: dir, WAYLAND_DISPLAY: "wayland-0" }, "linux"), ["xdg-open"]);
    assertEquals(await browserOpener({ PATH: dir, SSH_CONNECTION: "1 2 3 4" }, "linux"), undefined);
    assertEquals(await browserOpener({ PATH: "/nonexistent", DISPLAY: ":0" }, "linux"), undefined);
    assertEquals(await browserOpener({ SSH_TTY: "/dev/pts/1" }, "darwin"), undefined);
    assertEquals(await browserOpener({}, "darwin"), ["open"]);
    assertEquals(await browserOpener({}, "windows"), ["cmd", "/c", "start", ""]);
    assertEquals(await browserOpener({ BROWSER: "w3m", SSH_TTY: "/dev/pts/1" }, "linux"), ["w3m"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: logout revokes the runner in the app; an unreachable app is said and exits 1", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const env = cliEnv(app, dir, configPath);
  try {
    const user = await signup(app.url);
    const paired = await storePairedRunner(app, user, configPath);
    assertEquals((await listedRunners(app, user)).map((r) => r.runnerId), [paired.runnerId]);
    const logout = new Cli(["logout"], env);
    assertEquals((await logout.status).code, 0, logout.stderr);
    assert(logout.stdout.includes("revoked this runner in the app"), logout.stdout);
    assertEquals(await listedRunners(app, user), [], "the runner is gone from the app");
    assertEquals(JSON.parse(await Deno.readTextFile(configPath)).credentials, undefined);

    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const gone = `http://127.0.0.1:${listener.addr.port}`;
    listener.close();
    const stranded = await storePairedRunner(app, user, configPath, gone);
    const offline = new Cli(["logout"], env);
    assertEquals((await offline.status).code, 1);
    assert(offline.stderr.includes(`could not revoke them in the app at ${gone}`), offline.stderr);
    assert(offline.stderr.includes("the token stays valid until you remove this runner"), offline.stderr);
    assertEquals(JSON.parse(await Deno.readTextFile(configPath)).credentials, undefined, "forgotten anyway");
    assertEquals((await listedRunners(app, user)).map((r) => r.runnerId), [stranded.runnerId]);
  } finally {
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: pairing a paired machine again replaces its runner instead of adding another", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const processes: Cli[] = [];
  try {
    const user = await signup(app.url);
    const before = await storePairedRunner(app, user, configPath);
    const again = new Cli(["pair", "--yes"], cliEnv(app, dir, configPath));
    processes.push(again);
    await approvePairing(app.url, user.cookie, await pairingCode(again));
    assertEquals((await again.status).code, 0, again.stderr);
    const stored = JSON.parse(await Deno.readTextFile(configPath)).credentials;
    assert(stored.runnerId !== before.runnerId);
    assertEquals((await listedRunners(app, user)).map((r) => r.runnerId), [stored.runnerId]);
    assert(
      again.stdout.includes(`Removed this machine's previous runner (${before.runnerId})`),
      again.stdout,
    );
  } finally {
    for (const process of processes) await process.kill("SIGKILL");
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: a runner removed from the account ends its tmux sessions", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const tmux: TmuxSettings = { binary: "tmux", socket: `coda-test-${crypto.randomUUID().slice(0, 8)}` };
  const processes: Cli[] = [];
  try {
    const user = await signup(app.url);
    const paired = await storePairedRunner(app, user, configPath);
    const runner = new Cli([], {
      ...cliEnv(app, dir, configPath),
      TTY_SYNC: "tmux",
      CODA_TMUX_SOCKET: tmux.socket,
    });
    processes.push(runner);
    await waitFor(() => runner.stderr.includes("connected to the relay"), "the relay link", 60_000);
    const session = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const client = new TestClient(`${app.relayUrl}/client?token=${session.token}`);
    await client.opened;
    client.send({ type: "stdin", sessionId: session.sessionId, data: "echo tmux-$((6 * 7))\r" });
    await client.waitForOutput("tmux-42");
    assert(await hasTmuxSession(tmux, session.sessionId));
    await revokeRunner(app.url, user.cookie, paired.runnerId);
    assertEquals((await runner.status).code, 3, runner.stderr);
    assertEquals(await hasTmuxSession(tmux, session.sessionId), false, "the shell is gone with the pairing");
    await client.close();
  } finally {
    for (const process of processes) await process.kill("SIGKILL");
    await new Deno.Command("tmux", {
      args: ["-L", tmux.socket, "kill-server"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: a runner revoked because this machine was paired again leaves its tmux sessions", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-cli-" });
  const configPath = join(dir, "config.json");
  const tmux: TmuxSettings = { binary: "tmux", socket: `coda-test-${crypto.randomUUID().slice(0, 8)}` };
  const env = { ...cliEnv(app, dir, configPath), TTY_SYNC: "tmux", CODA_TMUX_SOCKET: tmux.socket };
  const processes: Cli[] = [];
  try {
    const user = await signup(app.url);
    const paired = await storePairedRunner(app, user, configPath);
    const runner = new Cli([], env);
    processes.push(runner);
    await waitFor(() => runner.stderr.includes("connected to the relay"), "the relay link", 60_000);
    const session = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const client = new TestClient(`${app.relayUrl}/client?token=${session.token}`);
    await client.opened;
    client.send({ type: "stdin", sessionId: session.sessionId, data: "echo kept-$((6 * 7))\r" });
    await client.waitForOutput("kept-42");
    await client.close();

    const again = new Cli(["pair", "--yes"], env);
    processes.push(again);
    await approvePairing(app.url, user.cookie, await pairingCode(again));
    assertEquals((await again.status).code, 0, again.stderr);
    assertEquals((await runner.status).code, 3, runner.stderr);
    assert(runner.stderr.includes("This machine was paired again"), runner.stderr);
    assert(await hasTmuxSession(tmux, session.sessionId), "the new runner can re-adopt the shell");
  } finally {
    for (const process of processes) await process.kill("SIGKILL");
    await endHolders(join(dir, "sessions"), silentLogger);
    await new Deno.Command("tmux", {
      args: ["-L", tmux.socket, "kill-server"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: selfcheck passes on a healthy machine, and names what is wrong with exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-selfcheck-" });
  const configPath = join(dir, "config", "coda-runner", "config.json");
  const env = localEnv(dir, configPath);
  try {
    const fresh = new Cli(["selfcheck"], env);
    assertEquals((await fresh.status).code, 0, fresh.stdout + fresh.stderr);
    const lines = fresh.stdout.trim().split("\n");
    assertEquals(
      lines.map((line) => line.split(":")[0]),
      ["ok   pty", "ok   config", "ok   relay", "ok   holder"],
      fresh.stdout,
    );
    assert(lines[0].includes("a resize reached it"), lines[0]);

    // A config directory and file others can read, holding a relay URL that is not one: all named, exit 1.
    await Deno.mkdir(dirname(configPath), { recursive: true });
    await Deno.chmod(dirname(configPath), 0o755);
    const credentials = { relayUrl: "ws://bad host", runnerId: "r", runnerToken: "t", appUrl: "http://x" };
    await Deno.writeTextFile(configPath, JSON.stringify({ version: 1, cwds: {}, credentials }), {
      mode: 0o644,
    });
    await Deno.chmod(configPath, 0o644);
    const broken = new Cli(["selfcheck"], env);
    assertEquals((await broken.status).code, 1, broken.stdout + broken.stderr);
    assert(broken.stdout.includes("ok   pty:"), broken.stdout);
    assert(
      broken.stdout.includes(`FAIL config: ${dirname(configPath)} is 755, should be 700`),
      broken.stdout,
    );
    assert(broken.stdout.includes(`${configPath} is 644, should be 600`), broken.stdout);
    assert(
      broken.stdout.includes('FAIL relay: the relay URL must be a URL, got "ws://bad host"'),
      broken.stdout,
    );

    // A bad RELAY_URL stops before any check, as every command does, with the variable named.
    const badEnv = new Cli(["selfcheck"], { ...env, RELAY_URL: "https://relay.example" });
    assertEquals((await badEnv.status).code, 1);
    assert(badEnv.stderr.includes("RELAY_URL"), badEnv.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: install needs a pairing, says plainly when there is no user service manager, and uninstall is idempotent", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-install-cli-" });
  const configPath = join(dir, "config", "coda-runner", "config.json");
  const env = { ...cliEnv(app, dir, configPath), XDG_CONFIG_HOME: join(dir, "xdg") };
  const unit = join(dir, "xdg", "systemd", "user", "coda-runner.service");
  try {
    const unpaired = new Cli(["install"], env);
    assertEquals((await unpaired.status).code, 1);
    assert(unpaired.stderr.includes("not paired yet"), unpaired.stderr);

    const user = await signup(app.url);
    await storePairedRunner(app, user, configPath);
    const hasUserSystemd = await new Deno.Command("systemctl", {
      args: ["--user", "is-system-running"],
      stdout: "null",
      stderr: "null",
    }).output().then((r) => r.success, () => false);
    const install = new Cli(["install"], env);
    const code = (await install.status).code;
    if (hasUserSystemd) {
      assertEquals(code, 0, install.stderr);
      assert(install.stdout.includes("loginctl enable-linger"), install.stdout);
    } else {
      assertEquals(code, 1, install.stdout);
      assert(install.stderr.includes("could not install the service"), install.stderr);
      assert(install.stderr.includes("systemd user session"), install.stderr);
      assert(!await Deno.stat(unit).then(() => true, () => false), "no unit left behind");
    }
    const uninstall = new Cli(["uninstall"], env);
    assertEquals((await uninstall.status).code, 0);
    assert(
      /Removed the service|No coda-runner service is installed/.test(uninstall.stdout),
      uninstall.stdout,
    );
  } finally {
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: --log-file appends the log lines to a file as well (what a Windows scheduled task keeps)", async () => {
  const app = await startTestApp();
  const dir = await Deno.makeTempDir({ prefix: "coda-log-file-" });
  const configPath = join(dir, "config", "coda-runner", "config.json");
  const logFile = join(dir, "coda-runner.log");
  try {
    const user = await signup(app.url);
    await storePairedRunner(app, user, configPath);
    const run = new Cli(["--log-file", logFile], cliEnv(app, dir, configPath));
    const logged = await waitFor(
      () =>
        Deno.readTextFile(logFile).then(
          (text) => text.includes("connected to the relay") ? text : "",
          () => "",
        ),
      "the log file",
    );
    assert(logged.includes("starting"), logged);
    // Standard error keeps its lines (read from its pipe, which may lag behind the file).
    await waitFor(() => run.stderr.includes("connected to the relay"), "the line on standard error");
    await run.kill();
  } finally {
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});
