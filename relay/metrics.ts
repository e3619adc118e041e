/**
 * Relay counters and gauges, rendered in the Prometheus text format at `/metrics`.
 *
 * @module
 */

/** Direction of relayed traffic. */
export type Direction = "runner_to_client" | "client_to_runner";

/** Counters the relay updates; gauges are read from the registry when rendering. */
export class RelayMetrics {
  #bytes: Record<Direction, number> = { runner_to_client: 0, client_to_runner: 0 };
  #frames: Record<Direction, number> = { runner_to_client: 0, client_to_runner: 0 };
  #dropped = new Map<string, number>();
  #authFailures = new Map<string, number>();
  #closes = new Map<string, number>();
  #replays = new Map<string, number>();

  /** Counts one frame of `bytes` relayed in `direction`. */
  relayed(direction: Direction, bytes: number): void {
    this.#bytes[direction] += bytes;
    this.#frames[direction] += 1;
  }

  /** Counts a frame the relay did not forward, by reason. */
  dropped(reason: string): void {
    this.#dropped.set(reason, (this.#dropped.get(reason) ?? 0) + 1);
  }

  /** Counts a refused authentication, by endpoint and reason. */
  authFailure(endpoint: "runner" | "client", reason: string): void {
    const key = `${endpoint}\u0000${reason}`;
    this.#authFailures.set(key, (this.#authFailures.get(key) ?? 0) + 1);
  }

  /** Counts a connection the relay closed, by close code. */
  closed(code: number): void {
    this.#closes.set(String(code), (this.#closes.get(String(code)) ?? 0) + 1);
  }

  /** Counts an upgrade answered with `fly-replay` towards another instance, by endpoint. */
  replayed(endpoint: "runner" | "client"): void {
    this.#replays.set(endpoint, (this.#replays.get(endpoint) ?? 0) + 1);
  }

  /** Total dropped frames of `reason` (tests read it). */
  droppedCount(reason: string): number {
    return this.#dropped.get(reason) ?? 0;
  }

  /** Renders every metric, with the current `gauges`. */
  render(gauges: { runners: number; clients: number; sessions: number; sockets: number }): string {
    const lines: string[] = [];
    const gauge = (name: string, help: string, value: number) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
    };
    const counter = (name: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    gauge("relay_runners_connected", "Runners connected and authenticated.", gauges.runners);
    gauge("relay_clients_connected", "Clients connected and authenticated.", gauges.clients);
    gauge("relay_sessions_connected", "Sessions with at least one client connected.", gauges.sessions);
    gauge("relay_websockets_open", "WebSockets open or opening (every one authenticated).", gauges.sockets);
    const directions = Object.keys(this.#bytes) as Direction[];
    counter(
      "relay_bytes_total",
      "Bytes of frames relayed, by direction.",
      directions.map((d) => [`{direction="${d}"}`, this.#bytes[d]]),
    );
    counter(
      "relay_frames_total",
      "Frames relayed, by direction.",
      directions.map((d) => [`{direction="${d}"}`, this.#frames[d]]),
    );
    counter(
      "relay_frames_dropped_total",
      "Frames not forwarded, by reason.",
      [...this.#dropped].map(([reason, n]) => [`{reason="${label(reason)}"}`, n]),
    );
    counter(
      "relay_auth_failures_total",
      "Refused authentications, by endpoint and reason.",
      [...this.#authFailures].map(([key, n]) => {
        const [endpoint, reason] = key.split("\u0000");
        return [`{endpoint="${endpoint}",reason="${label(reason)}"}`, n];
      }),
    );
    counter(
      "relay_connections_closed_total",
      "Connections closed by the relay, by close code.",
      [...this.#closes].map(([code, n]) => [`{code="${code}"}`, n]),
    );
    counter(
      "relay_replays_total",
      "Upgrades sent to the instance holding their runner (fly-replay), by endpoint.",
      [...this.#replays].map(([endpoint, n]) => [`{endpoint="${endpoint}"}`, n]),
    );
    return lines.join("\n") + "\n";
  }
}

function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}
