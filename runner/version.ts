/** The runner's version, printed by `coda-runner --version`. */
export const VERSION = "0.1.0";
