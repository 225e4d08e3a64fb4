// Ward serves the built app itself (`ward serve`, from web/dist embedded at build time or from
// `web_dir`), under a strict Content-Security-Policy: no inline scripts or styles, so everything
// is emitted as files under /assets/ with hashed names.
import { defineConfig } from "vite";

// The policy `ward serve` sends with the app; `vite preview` sends it too, to catch violations early.
const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");
const ward = process.env.WARD_DEV_SERVER ?? "http://127.0.0.1:8008";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    // Keep every asset a file: a data: URL for a small asset would need a laxer CSP.
    assetsInlineLimit: 0,
    target: "es2022",
    sourcemap: false,
    // matrix-js-sdk plus its crypto bindings are large; the wasm module is loaded separately.
    chunkSizeWarningLimit: 2048,
  },
  // `npm run dev` / `npm run preview` against a local Ward (WARD_DEV_SERVER): the API is
  // proxied so that the page stays same-origin. Tests use Ward's own origin instead.
  server: { proxy: { "/_matrix": ward, "/_ward": ward } },
  preview: { proxy: { "/_matrix": ward, "/_ward": ward }, headers: { "Content-Security-Policy": CSP } },
});
