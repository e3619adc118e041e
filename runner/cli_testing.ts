/**
 * Helpers for tests that run the CLI as users do: `deno run runner/main.ts`
 * as a subprocess against the real app and relay.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { pairRunner, type StartedApp, type TestUser } from "@coda/api/testing";

/** The runner's entry point, as `deno run` takes it. */
export const MAIN: string = join(import.meta.dirname!, "main.ts");

/** A running CLI process with its output collected as text. */
export class Cli {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;

  constructor(args: string[], env: Record<string, string>, options: { stdin?: "piped"; main?: string } = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", options.main ?? MAIN, ...args],
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

/** The CLI's environment for a test: a temporary home and config file, bash, and the shared module cache. */
export function localEnv(home: string, configPath: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    SHELL: "/bin/bash",
    CODA_RUNNER_CONFIG: configPath,
    DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno"),
  };
}

/** The base environment of a CLI run against `app` with its config at `configPath`. */
export function cliEnv(app: StartedApp, home: string, configPath: string): Record<string, string> {
  return { ...localEnv(home, configPath), APP_URL: app.url, RELAY_URL: app.relayUrl };
}

/** Stores credentials of a runner paired for `user` (with the API directly) where the CLI reads them. */
export async function storePairedRunner(
  app: StartedApp,
  user: TestUser,
  configPath: string,
  appUrl = app.url,
) {
  const paired = await pairRunner(app.url, user.cookie);
  const credentials = {
    relayUrl: paired.relayUrl,
    runnerId: paired.runnerId,
    runnerToken: paired.runnerToken,
    appUrl,
    email: user.email,
  };
  await Deno.mkdir(dirname(configPath), { recursive: true });
  await Deno.writeTextFile(configPath, JSON.stringify({ version: 1, credentials, cwds: {} }));
  return paired;
}
