/**
 * The app as a library: start it (API, relay and the built SPA on one
 * listener), or back a relay with its KV. The HTTP contract is
 * `@coda/api/contract`; test helpers are `@coda/api/testing`.
 *
 * @module
 */
export { startApp, type StartAppOptions, type StartedApp } from "./server.ts";
export { createKvRelayBackend } from "./relay_backend.ts";
