/**
 * Structured logging: one JSON object per event.
 *
 * @module
 */

/** Receives one log record. Records never hold tokens or request queries. */
export type RelayLog = (record: Record<string, unknown>) => void;

/** Default sink: a JSON line with a timestamp on stderr. */
export const stderrLog: RelayLog = (record) => {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...record }));
};
