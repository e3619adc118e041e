/**
 * Browser entry: applies the theme, then renders the app into `#app`.
 *
 * @module
 */
import { render } from "preact";
import { App } from "./app.tsx";
import { applyTheme, currentTheme } from "./theme.ts";

applyTheme(currentTheme());
render(<App />, document.getElementById("app")!);
