//! Ward's browser app as embedded files, and the rules for serving them.
//!
//! The app lives in `web/` (TypeScript, built by Vite into `web/dist`); `build.rs` embeds the
//! build output. This crate knows nothing of HTTP servers: it answers "which bytes, which
//! content type, may they be cached forever" for a path.

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// One file of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// Vite names files under `/assets/` by content hash: they never change.
    pub immutable: bool,
}

/// The Content-Security-Policy of every app response: nothing from other origins, no inline
/// script, no eval (WebAssembly compilation excepted, which the crypto module needs).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
     worker-src 'self' blob:; font-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// Shown when the binary was built without the app (no npm on the build machine, say).
pub const PLACEHOLDER_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Ward</title></head>\
<body><h1>Ward is running</h1><p>This build of Ward does not contain its browser app \
(it was built without Node.js/npm, or with WARD_WEB_BUILD=0). Rebuild it with npm available, \
or use any Matrix client, such as Element, with this server's address.</p>\
<p lang=\"de\">Ward läuft, aber diese Version enthält die Browser-App nicht. Bitte mit npm neu \
bauen oder einen Matrix-Client wie Element mit der Adresse dieses Servers verwenden.</p></body></html>\n";

/// Whether the app is embedded.
pub fn has_app() -> bool {
    assets::ASSETS.iter().any(|(path, _)| *path == "/index.html")
}

/// The embedded file for a request path (`/` is `index.html`).
pub fn embedded(path: &str) -> Option<Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    assets::ASSETS.iter().find(|(p, _)| *p == path).map(|(p, bytes)| Asset {
        bytes,
        content_type: content_type(p),
        immutable: p.starts_with("/assets/"),
    })
}

/// The content type for a file name, by extension; unknown types are served as bytes.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}

/// A request path safe to look up on disk: relative, no `..`, no hidden files.
pub fn safe_relative_path(path: &str) -> Option<&str> {
    let rel = path.strip_prefix('/')?;
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let ok = rel.split('/').all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    ok.then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        assert_eq!(safe_relative_path("/"), Some("index.html"));
        assert_eq!(safe_relative_path("/assets/app-1234.js"), Some("assets/app-1234.js"));
        for bad in ["/../etc/passwd", "/assets/../../x", "/.env", "//x", "relative", "/a\\b"] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("/assets/x.wasm"), "application/wasm");
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/whatever"), "application/octet-stream");
    }
}
