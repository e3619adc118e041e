/**
 * `deno run -A .ci/smoke_runner.ts <runner command…>`: the release workflow's
 * smoke test of a built `coda-runner`, before anything is uploaded. It starts
 * the app from this checkout on loopback, signs up, pairs a runner through the
 * API, starts the given runner command with that token (`RUNNER_TOKEN`,
 * `RELAY_URL`), opens a session over the relay like a browser and round-trips
 * an `echo` through the runner's shell. Exit 0 with `smoke ok`, else 1 with
 * what failed and the runner's output.
 *
 * @module
 */
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { TestClient, waitFor } from "@coda/runner/testing";

/** What a program needs of this machine's environment to start a shell (Windows needs `SystemRoot`). */
function systemEnv(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["PATH", "SystemRoot", "COMSPEC", "TEMP", "TMP", "SHELL", "DENO_DIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** Longest each step of the smoke test may take, by default. */
const TIMEOUT_MS = 60_000;

/**
 * The line typed into the shell and what it prints: computed by the shell, so the echo of the typed
 * line never matches (`cmd.exe` expands `%OS%`, POSIX shells `$((…))`).
 */
export function smokeLine(os: typeof Deno.build.os = Deno.build.os): { typed: string; expected: string } {
  return os === "windows"
    ? { typed: "echo smoke-%OS%\r", expected: "smoke-Windows_NT" }
    : { typed: "echo smoke-$((6 * 7))\r", expected: "smoke-42" };
}

/** Runs the smoke test against `command` (the binary, or `deno run … runner/main.ts`); throws on failure. */
export async function smokeTest(command: string[], timeoutMs: number = TIMEOUT_MS): Promise<void> {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-smoke-" });
  let runner: Deno.ChildProcess | undefined;
  let output = "";
  try {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie, { name: "smoke" });
    runner = new Deno.Command(command[0], {
      args: command.slice(1),
      env: {
        ...systemEnv(),
        HOME: home,
        USERPROFILE: home,
        CODA_RUNNER_CONFIG: `${home}/coda-runner/config.json`,
        RELAY_URL: app.relayUrl,
        RUNNER_TOKEN: paired.runnerToken,
        APP_URL: app.url,
      },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const decoder = new TextDecoder();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
    };
    void collect(runner.stdout);
    void collect(runner.stderr);
    const created = await waitFor(
      async () => {
        const ticket = await createSession(app.url, user.cookie, {
          ideaId: "smoke",
          runnerId: paired.runnerId,
        })
          .catch(() => undefined);
        return ticket;
      },
      "a session ticket",
      timeoutMs,
      250,
    );
    const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`, {
      origin: app.config.publicUrl,
    });
    await client.opened;
    const { typed, expected } = smokeLine();
    await waitFor(
      () => client.metas().includes(`coda:session:${created.sessionId}`),
      "the runner to attach",
      timeoutMs,
    );
    client.send({ type: "stdin", sessionId: created.sessionId, data: typed });
    await client.waitForOutput(expected, timeoutMs);
    // The shell ends, and its holder with it: a session outlives its runner, and would outlive this test.
    client.send({ type: "stdin", sessionId: created.sessionId, data: "exit\r" });
    const closed = await client.closed;
    if (closed.code !== 1000) {
      throw new Error(`the session did not end: closed ${closed.code} ${closed.reason}`);
    }
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nrunner output:\n${output}`);
  } finally {
    try {
      runner?.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await runner?.status;
    await app.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  if (Deno.args.length === 0) {
    console.error("usage: deno run -A .ci/smoke_runner.ts <runner command…>");
    Deno.exit(2);
  }
  try {
    await smokeTest(Deno.args);
    console.log("smoke ok: paired, attached over the relay, echo round-tripped");
    Deno.exit(0);
  } catch (error) {
    console.error(`smoke failed: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
