/**
 * `deno task start`: the app (API, relay and SPA) on one port. With `--dev`
 * (`deno task dev`) the SPA is also rebuilt whenever its sources change.
 *
 * @module
 */
import { ConfigError } from "./config.ts";
import { startApp } from "./server.ts";
import { surviveDescriptorExhaustion } from "../relay/listener.ts";
import { stderrLog } from "../relay/log.ts";

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
    if (Deno.args.includes("--dev")) {
      const { buildSpa } = await import("../spa/build.ts");
      await buildSpa({ watch: true, minify: false });
      console.log("Rebuilding the SPA on change (spa/src).");
    }
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
