/**
 * `deno task start` (after `deno task build`): the app (API, relay and the
 * built SPA) on one port. `deno task dev` runs it next to the SPA's watcher
 * (`spa/build.ts --watch`), a process of its own so that the server's module
 * graph holds no build tools.
 *
 * @module
 */
import { ConfigError } from "./config.ts";
import { startApp } from "./server.ts";
import { stderrLog, surviveDescriptorExhaustion } from "@coda/relay";

if (import.meta.main) {
  surviveDescriptorExhaustion(stderrLog);
  try {
    const app = await startApp({
      onListen: ({ url, config }) => {
        console.log(`Coda Dev Mode is running at ${config.publicUrl} (listening on ${url})`);
        console.log(`Relay: ${config.relayUrl}  Data: ${config.dataDir}`);
        const { fdLimit, maxConnections, maxConnectionsPerIp } = config.edge;
        console.log(
          `Connections: at most ${maxConnections}, ${maxConnectionsPerIp} per address` +
            ` (open-file limit ${fdLimit ? `${fdLimit.soft}, hard ${fdLimit.hard}` : "unknown"})`,
        );
        for (const notice of config.notices) console.warn(`Configuration: ${notice}`);
      },
    });
    const stop = () => {
      console.log("Shutting down…");
      app.close().then(() => Deno.exit(0));
    };
    Deno.addSignalListener("SIGINT", stop);
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      Deno.exit(1);
    }
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(`Port in use: ${error.message}. Set PORT to another port.`);
      Deno.exit(1);
    }
    throw error;
  }
}
