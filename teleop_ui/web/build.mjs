// Bundles the console (src/main.js + three.js) into ../intball_teleop/static/ (no CDN at run time).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../intball_teleop/static/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  outfile: out + "console.js",
  legalComments: "linked",
  logLevel: "warning",
});
copyFileSync("src/console.css", out + "console.css");
copyFileSync("index.html", out + "index.html");
console.log("console built into " + out);
