//! Embeds the browser app (`web/dist`, built by Vite) into the binary.
//!
//! If `web/` has sources and the build output is missing or older than them, this runs
//! `npm ci` (when `node_modules` is missing) and `npm run build` first, so `cargo build` alone
//! produces a binary with the app. `WARD_WEB_BUILD=0` skips that (the existing `web/dist`, if
//! any, is embedded as it is). Without npm or a successful build the binary is built with a
//! placeholder page instead, and cargo prints a warning saying why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    let dist = web.join("dist");
    println!("cargo:rerun-if-env-changed=WARD_WEB_BUILD");
    for input in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-changed={}", dist.display());

    let build_wanted = std::env::var("WARD_WEB_BUILD").map_or(true, |v| v != "0");
    if build_wanted
        && web.join("package.json").is_file()
        && is_stale(&web, &dist)
        && let Err(why) = npm_build(&web)
    {
        println!("cargo:warning=the web app was not built ({why}); the binary serves a placeholder page");
    }

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from("pub(crate) static ASSETS: &[(&str, &[u8])] = &[\n");
    for (url, path) in &files {
        let _ = writeln!(code, "    ({url:?}, include_bytes!({:?})),", path.display().to_string());
        println!("cargo:rerun-if-changed={}", path.display());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "node_modules" && e.file_name() != "dist")
        .filter_map(|e| newest(&e.path()))
        .max()
}

fn is_stale(web: &Path, dist: &Path) -> bool {
    let built = std::fs::metadata(dist.join("index.html")).and_then(|m| m.modified()).ok();
    match (built, newest(web)) {
        (Some(built), Some(source)) => source > built,
        _ => true,
    }
}

fn npm_build(web: &Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("npm")
            .args(args)
            .current_dir(web)
            .status()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("`npm {}` failed ({status})", args.join(" "))) }
    };
    if !web.join("node_modules").is_dir() {
        run(&["ci", "--no-audit", "--no-fund"])?;
    }
    run(&["run", "build"])
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            let abs = path.canonicalize().unwrap_or(path);
            out.push((url, abs));
        }
    }
}
