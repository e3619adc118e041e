/**
 * Several relay instances over one Deno KV (`DEVMODE_KV_URL`): which instances are alive, which
 * instance holds each runner, which instances have clients waiting for a user's runners, and an
 * inbox per instance for what another instance must act on. Routing a client to its runner's
 * instance (`fly-replay`) is `routing.ts`; the broker reports connections here.
 *
 * KV's `expireIn` is lazy, so every record stores its own `expiresAt`, and a runner record counts
 * only while the instance process that wrote it (its `boot`) is alive and not draining: a machine
 * that restarts under the same id does not inherit its old records.
 *
 * Keys (every value checked with its schema on read, since another version may have written it):
 * - `["relay", "instance", instance]` → {@linkcode InstanceRecord}, refreshed every `instanceHeartbeatMs`;
 * - `["relay", "runner", runnerId]` → {@linkcode RunnerPresence}, refreshed every `pingIntervalMs`;
 * - `["relay", "user_runner", userId, runnerId]` → the same record: the user's online runners;
 * - `["relay", "waiter", userId, instance]` → `{expiresAt}`: clients there wait for a runner of the user;
 * - `["relay", "inbox", instance, id]` → {@linkcode InboxMessage}, read every `clusterPollMs`.
 *
 * @module
 */
import * as v from "valibot";
import type { RelayLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import { PendingWrites } from "./pending_writes.ts";
import { getManyChunked } from "./shared_kv.ts";

/** Bumped by the app on every runner revocation; instances re-verify their runners when it moves. */
export const REVOCATION_EPOCH_KEY: Deno.KvKey = ["revocation_epoch"];
/** Bumped by the app on every sign-out; instances re-check their clients' users when it moves. */
export const SIGN_OUT_EPOCH_KEY: Deno.KvKey = ["sign_out_epoch"];
/** Bumped by the app when a share is revoked; instances re-check their viewers when it moves. */
export const SHARE_EPOCH_KEY: Deno.KvKey = ["share_epoch"];

/** Most inbox messages read per poll; the rest wait for the next one. */
const INBOX_BATCH = 100;
/** How long an inbox message is worth acting on. */
const INBOX_TTL_MS = 30_000;

const InstanceRecordSchema = v.object({
  instance: v.string(),
  /** This process of the instance: records written by an earlier process of the same id do not count. */
  boot: v.string(),
  draining: v.boolean(),
  startedAt: v.number(),
  expiresAt: v.number(),
});
/** A relay instance as other instances see it. */
export type InstanceRecord = v.InferOutput<typeof InstanceRecordSchema>;

const RunnerPresenceSchema = v.object({
  runnerId: v.string(),
  userId: v.string(),
  instance: v.string(),
  boot: v.string(),
  /** The connection's id: a newer connection of the same runner, anywhere, has another. */
  connection: v.string(),
  connectedAt: v.number(),
  /** When the runner was paired (its token's `iat`, seconds), for the default-runner choice. */
  pairedAt: v.optional(v.number()),
  expiresAt: v.number(),
});
/** Where a connected runner is. */
export type RunnerPresence = v.InferOutput<typeof RunnerPresenceSchema>;

const WaiterSchema = v.object({ expiresAt: v.number() });

const InboxMessageSchema = v.object({
  /** A runner connected on `instance`: clients waiting for it elsewhere go there; an older connection of it ends. */
  kind: v.literal("runner_online"),
  runnerId: v.string(),
  userId: v.string(),
  instance: v.string(),
  connection: v.string(),
  expiresAt: v.number(),
});
/** What one instance tells another. */
export type InboxMessage = v.InferOutput<typeof InboxMessageSchema>;

/** A runner connection as the broker reports it. */
export interface RunnerClaim {
  runnerId: string;
  userId: string;
  connectionId: string;
  connectedAt: number;
  pairedAt?: number;
}

/** Options of {@linkcode Cluster}. */
export interface ClusterOptions {
  kv: Deno.Kv;
  /** `FLY_MACHINE_ID`, `DEVMODE_INSTANCE_ID` or a random id (see `config.ts`). */
  instanceId: string;
  limits: RelayLimits;
  log: RelayLog;
  now: () => number;
}

/** What a started {@linkcode Cluster} calls back. */
export interface ClusterHandlers {
  /**
   * A runner connected on another instance and its record still says so: waiting clients of its
   * user, and any older connection of it here, must go.
   */
  onRunnerElsewhere(message: InboxMessage): void;
  /** The app bumped the revocation, sign-out or share epoch (possibly from another process). */
  onRevocationEpoch(): void;
}

const runnerKey = (runnerId: string): Deno.KvKey => ["relay", "runner", runnerId];
const userRunnerKey = (
  userId: string,
  runnerId: string,
): Deno.KvKey => ["relay", "user_runner", userId, runnerId];
const instanceKey = (instance: string): Deno.KvKey => ["relay", "instance", instance];
const waiterKey = (userId: string, instance: string): Deno.KvKey => ["relay", "waiter", userId, instance];

function parsed<T>(schema: v.GenericSchema<unknown, T>, value: unknown): T | null {
  const result = v.safeParse(schema, value);
  return result.success ? result.output : null;
}

/** Orders runners for the default choice: paired longest ago first, then connected longest ago, then by id. */
export function compareRunnerAge(
  a: { pairedAt?: number; connectedAt: number; runnerId: string },
  b: { pairedAt?: number; connectedAt: number; runnerId: string },
): number {
  const paired = (a.pairedAt ?? Number.POSITIVE_INFINITY) - (b.pairedAt ?? Number.POSITIVE_INFINITY);
  if (paired !== 0 && !Number.isNaN(paired)) return paired;
  if (a.connectedAt !== b.connectedAt) return a.connectedAt - b.connectedAt;
  return a.runnerId < b.runnerId ? -1 : a.runnerId > b.runnerId ? 1 : 0;
}

/** This instance's share of the records several relay instances keep in one KV. */
export class Cluster {
  /** This process, distinct from an earlier process of the same instance id. */
  readonly boot: string = crypto.randomUUID();
  readonly instanceId: string;
  readonly #kv: Deno.Kv;
  readonly #limits: RelayLimits;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #writes: PendingWrites;
  /** Per user, until when this instance's waiter record stands (so a burst of waiting clients writes once). */
  readonly #waiting = new Map<string, number>();
  #draining = false;
  #timers: ReturnType<typeof setInterval>[] = [];
  #epochs = "";
  #polling = false;

  constructor(options: ClusterOptions) {
    this.instanceId = options.instanceId;
    this.#kv = options.kv;
    this.#limits = options.limits;
    this.#now = options.now;
    this.#startedAt = options.now();
    this.#writes = new PendingWrites(options.log);
  }

  /**
   * Publishes this instance and starts its heartbeat and inbox polling. Resolves the other
   * instances that are alive now.
   */
  async start(handlers: ClusterHandlers): Promise<InstanceRecord[]> {
    // The timers first: a KV that fails now is tried again at every beat, and this instance joins once it answers.
    this.#timers.push(
      setInterval(() => this.#track(this.#heartbeat()), this.#limits.instanceHeartbeatMs),
      setInterval(() => this.#track(this.#poll(handlers)), this.#limits.clusterPollMs),
    );
    await this.#heartbeat();
    this.#epochs = await this.#readEpochs();
    return (await this.instances()).filter((record) => record.instance !== this.instanceId);
  }

  /** The live instances (draining ones included). */
  async instances(): Promise<InstanceRecord[]> {
    const live: InstanceRecord[] = [];
    for await (const entry of this.#kv.list({ prefix: ["relay", "instance"] })) {
      const record = parsed(InstanceRecordSchema, entry.value);
      if (record && record.expiresAt > this.#now()) live.push(record);
    }
    return live;
  }

  /** Marks this instance draining: others stop sending clients here. */
  async drain(): Promise<void> {
    this.#draining = true;
    await this.#heartbeat();
  }

  /** Stops the timers, waits for writes in flight and removes this instance's record. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await this.#writes.settle();
    const key = instanceKey(this.instanceId);
    const entry = await this.#kv.get(key);
    if (parsed(InstanceRecordSchema, entry.value)?.boot === this.boot) {
      await this.#kv.atomic().check(entry).delete(key).commit();
    }
  }

  /** Waits for the records being written. */
  async settle(): Promise<void> {
    await this.#writes.settle();
  }

  /**
   * Records a runner connected here, and tells the instances that need to know: the one holding
   * an older connection of it, and those with clients waiting for its user's runners.
   */
  claimRunner(claim: RunnerClaim): void {
    this.#track(
      (async () => {
        const previous = parsed(RunnerPresenceSchema, (await this.#kv.get(runnerKey(claim.runnerId))).value);
        const record = this.#presence(claim);
        await this.#write(record);
        const notify = new Set<string>();
        if (previous && previous.instance !== this.instanceId) notify.add(previous.instance);
        for await (const entry of this.#kv.list({ prefix: ["relay", "waiter", claim.userId] })) {
          const waiter = parsed(WaiterSchema, entry.value);
          const instance = entry.key[3];
          if (waiter && waiter.expiresAt > this.#now() && typeof instance === "string") notify.add(instance);
        }
        notify.delete(this.instanceId);
        const message: InboxMessage = {
          kind: "runner_online",
          runnerId: claim.runnerId,
          userId: claim.userId,
          instance: this.instanceId,
          connection: claim.connectionId,
          expiresAt: this.#now() + INBOX_TTL_MS,
        };
        for (const instance of notify) {
          const key = ["relay", "inbox", instance, crypto.randomUUID()];
          await this.#kv.set(key, message, { expireIn: INBOX_TTL_MS });
        }
      })(),
      { event: "cluster_claim_failed", runnerId: claim.runnerId },
    );
  }

  /**
   * Refreshes a runner's record. Resolves `false` when another connection of the runner (on any
   * instance) holds it now: this one was replaced.
   */
  async refreshRunner(claim: RunnerClaim): Promise<boolean> {
    const current = parsed(RunnerPresenceSchema, (await this.#kv.get(runnerKey(claim.runnerId))).value);
    if (current && current.connection !== claim.connectionId && current.expiresAt > this.#now()) return false;
    await this.#write(this.#presence(claim));
    return true;
  }

  /** Removes a runner's record if it is still this connection's. */
  releaseRunner(claim: RunnerClaim): void {
    this.#track(
      (async () => {
        const key = runnerKey(claim.runnerId);
        const entry = await this.#kv.get(key);
        if (parsed(RunnerPresenceSchema, entry.value)?.connection !== claim.connectionId) return;
        const userKey = userRunnerKey(claim.userId, claim.runnerId);
        await this.#kv.atomic().check(entry).delete(key).delete(userKey).commit();
      })(),
      { event: "cluster_release_failed", runnerId: claim.runnerId },
    );
  }

  /** Where `runnerId` is connected, if on a live instance that is not draining. */
  async locate(runnerId: string): Promise<RunnerPresence | null> {
    const record = parsed(RunnerPresenceSchema, (await this.#kv.get(runnerKey(runnerId))).value);
    if (!record) return null;
    return (await this.#live([record]))[0] ?? null;
  }

  /** The user's runners connected to live instances that are not draining. */
  async onlineRunners(userId: string): Promise<RunnerPresence[]> {
    const records: RunnerPresence[] = [];
    for await (const entry of this.#kv.list({ prefix: ["relay", "user_runner", userId] })) {
      const record = parsed(RunnerPresenceSchema, entry.value);
      if (record && record.userId === userId) records.push(record);
    }
    return await this.#live(records);
  }

  /** Records that clients here wait for a runner of `userId`, so its connecting anywhere sends them there. */
  awaitRunners(userId: string): void {
    const now = this.#now();
    if ((this.#waiting.get(userId) ?? 0) > now + this.#limits.runnerWaitMs / 2) return;
    const expiresAt = now + this.#limits.runnerWaitMs + this.#limits.instanceTtlMs;
    this.#waiting.set(userId, expiresAt);
    for (const [user, until] of this.#waiting) if (until <= now) this.#waiting.delete(user);
    this.#track(
      this.#kv.set(waiterKey(userId, this.instanceId), { expiresAt }, { expireIn: expiresAt - now }),
      { event: "cluster_wait_failed", userId },
    );
  }

  #presence(claim: RunnerClaim): RunnerPresence {
    const record: RunnerPresence = {
      runnerId: claim.runnerId,
      userId: claim.userId,
      instance: this.instanceId,
      boot: this.boot,
      connection: claim.connectionId,
      connectedAt: claim.connectedAt,
      expiresAt: this.#now() + this.#runnerTtlMs(),
    };
    if (claim.pairedAt !== undefined) record.pairedAt = claim.pairedAt;
    return record;
  }

  #runnerTtlMs(): number {
    return 3 * this.#limits.pingIntervalMs;
  }

  async #write(record: RunnerPresence): Promise<void> {
    const expireIn = this.#runnerTtlMs();
    await this.#kv.atomic()
      .set(runnerKey(record.runnerId), record, { expireIn })
      .set(userRunnerKey(record.userId, record.runnerId), record, { expireIn })
      .commit();
  }

  /** The records whose instance process is alive and not draining, and which have not expired. */
  async #live(records: RunnerPresence[]): Promise<RunnerPresence[]> {
    const now = this.#now();
    const fresh = records.filter((record) => record.expiresAt > now);
    const instances = [...new Set(fresh.map((record) => record.instance))];
    const alive = new Map<string, InstanceRecord>();
    for (const entry of await getManyChunked(this.#kv, instances.map(instanceKey))) {
      const record = parsed(InstanceRecordSchema, entry.value);
      if (record && record.expiresAt > now && !record.draining) alive.set(record.instance, record);
    }
    return fresh.filter((record) => alive.get(record.instance)?.boot === record.boot);
  }

  async #heartbeat(): Promise<void> {
    const now = this.#now();
    const record: InstanceRecord = {
      instance: this.instanceId,
      boot: this.boot,
      draining: this.#draining,
      startedAt: this.#startedAt,
      expiresAt: now + this.#limits.instanceTtlMs,
    };
    await this.#kv.set(instanceKey(this.instanceId), record, { expireIn: this.#limits.instanceTtlMs });
  }

  /** Reads the inbox (acting only on what the records still confirm) and the revocation epochs. */
  async #poll(handlers: ClusterHandlers): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const epochs = await this.#readEpochs();
      if (epochs !== this.#epochs) handlers.onRevocationEpoch();
      this.#epochs = epochs;
      const entries = [];
      for await (
        const entry of this.#kv.list({ prefix: ["relay", "inbox", this.instanceId] }, { limit: INBOX_BATCH })
      ) {
        entries.push(entry);
      }
      for (const entry of entries) {
        await this.#kv.delete(entry.key);
        const message = parsed(InboxMessageSchema, entry.value);
        if (!message || message.expiresAt <= this.#now()) continue;
        // A message overtaken by a later move (the runner came back here, say) is stale.
        const current = await this.locate(message.runnerId);
        if (current?.connection === message.connection) handlers.onRunnerElsewhere(message);
      }
    } finally {
      this.#polling = false;
    }
  }

  /** Where the app's revocation and sign-out epochs stand, as one comparable string. */
  async #readEpochs(): Promise<string> {
    const epochs = await this.#kv.getMany([REVOCATION_EPOCH_KEY, SIGN_OUT_EPOCH_KEY, SHARE_EPOCH_KEY]);
    return epochs.map((epoch) => epoch.versionstamp).join("/");
  }

  /** Keeps `write` until it settles, logging (never throwing) a failure. */
  #track(
    write: Promise<unknown>,
    failure: Record<string, unknown> = { event: "cluster_write_failed" },
  ): void {
    this.#writes.track(write, failure);
  }
}
