/**
 * The one-off admin script: registers a runner for a user and prints its
 * runner token, for machines that cannot go through pairing.
 *
 * ```sh
 * deno task mint-runner-token --email ada@example.com [--name build-box]
 * ```
 *
 * The token goes to stdout (nothing else does); a summary goes to stderr.
 * Bad arguments, an unknown email or a configuration problem: one line on
 * stderr and exit code 1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openSharedKv } from "@coda/relay";
import { signRunnerToken } from "@coda/relay/tokens";
import { type AppConfig, ConfigError, loadAppConfig } from "./config.ts";
import { randomId } from "./crypto.ts";
import { MAX_RUNNER_NAME } from "./contract.ts";
import { addRunnerCreate } from "./runners.ts";
import { findUserByEmail } from "./users.ts";

/** A problem worded for the person running the script. */
export class MintError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MintError";
  }
}

/** A minted runner. */
export interface MintedRunner {
  runnerId: string;
  userId: string;
  email: string;
  name: string;
  runnerToken: string;
  expiresAt: Date;
}

/** Registers a runner named `name` for the user with `email` and signs its token. */
export async function mintRunnerToken(
  kv: Deno.Kv,
  config: AppConfig,
  input: { email: string; name?: string; now: number },
): Promise<MintedRunner> {
  const user = await findUserByEmail(kv, input.email);
  if (!user) throw new MintError(`no account with email ${input.email}`);
  const name = (input.name ?? "").trim() || "runner";
  if (name.length > MAX_RUNNER_NAME) {
    throw new MintError(`--name must be at most ${MAX_RUNNER_NAME} characters`);
  }
  const runnerId = randomId();
  const jti = randomId();
  const result = await addRunnerCreate(kv.atomic(), {
    runnerId,
    userId: user.id,
    name,
    hostname: "",
    os: "",
    createdAt: input.now,
    jti,
  }).commit();
  if (!result.ok) throw new MintError("could not register the runner; try again");
  const runnerToken = await signRunnerToken(config.jwtSecret, { runnerId, userId: user.id, jti }, {
    now: new Date(input.now),
    ttlSeconds: config.runnerTokenTtlSeconds,
  });
  return {
    runnerId,
    userId: user.id,
    email: user.email,
    name,
    runnerToken,
    expiresAt: new Date(input.now + config.runnerTokenTtlSeconds * 1000),
  };
}

const USAGE = "usage: deno task mint-runner-token --email EMAIL [--name NAME]";

function parse(args: string[]): { email: string; name?: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { email: { type: "string" }, name: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new MintError(`${(error as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new MintError(USAGE);
  if (!values.email) throw new MintError(`--email is required\n${USAGE}`);
  return { email: values.email, name: values.name };
}

/** Runs the script; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let kv: Deno.Kv | undefined;
  try {
    const { email, name } = parse(args);
    const config = loadAppConfig();
    kv = await openSharedKv(config.kvUrl);
    const minted = await mintRunnerToken(kv, config, { email, name, now: Date.now() });
    console.error(
      `Registered runner "${minted.name}" (${minted.runnerId}) for ${minted.email}; ` +
        `token valid until ${minted.expiresAt.toISOString()}.`,
    );
    console.log(minted.runnerToken);
    return 0;
  } catch (error) {
    if (error instanceof MintError || error instanceof ConfigError) {
      console.error(`mint-runner-token: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    kv?.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
