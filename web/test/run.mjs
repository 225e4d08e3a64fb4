// The web app's unit tests: every `test/*.test.ts` is bundled by esbuild (already the build's
// TypeScript stripper, via Vite) into node_modules/.unit-tests/ and run by Node's own test runner
// (`node --test`). No test framework to install; the tests use `node:test` and `node:assert`.
// They cover the pure parts (no DOM, no livekit-client): Node has WebCrypto, TextEncoder and btoa
// like a browser. Types are stripped, not checked (`npm run build` type-checks src/).
//
//   npm test                 all of them
//   npm test -- keys         the files whose name contains "keys"
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(web, "node_modules", ".unit-tests");
const filter = process.argv[2] ?? "";
const files = readdirSync(join(web, "test"))
  .filter((f) => f.endsWith(".test.ts") && f.includes(filter))
  .sort();
if (!files.length) {
  console.error(`no test files matching "${filter}"`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: files.map((f) => join(web, "test", f)),
  outdir: out,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  logLevel: "warning",
});
const run = spawnSync(process.execPath, ["--test", ...files.map((f) => join(out, f.replace(/\.ts$/, ".mjs")))], {
  stdio: "inherit",
});
process.exit(run.status ?? 1);
