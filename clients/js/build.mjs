// Bundle src/ and its @hpke dependencies into one ES module, dist/litefaas.js, that a page imports
// directly and Node >= 20 runs. The build is reproducible: same sources and lock file, same bytes.
import { build } from "esbuild";

await build({
  entryPoints: ["src/index.js"],
  outfile: "dist/litefaas.js",
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: ["import", "default"],
  target: ["es2022", "chrome120", "firefox120", "safari17", "node20"],
  minify: true,
  legalComments: "eof",
  sourcemap: false,
  logLevel: "warning",
});
