//! `ward-testclient`: runs one matrix-rust-sdk scenario against a homeserver and reports.
//!
//! ```text
//! ward-testclient <homeserver-url> <scenario>
//! ward-testclient --list
//! ```
//!
//! The users come already registered, as JSON in `WARD_TESTCLIENT_USERS`:
//! `[{"user": "alice_1234", "password": "…"}, …]` (tests/acceptance/test_rust_sdk.py registers
//! them, as test_js_sdk.py does for matrix-js-sdk). On success the program prints one JSON object
//! on stdout — `{"scenario": …, "ok": true, "report": {…}}` — and exits 0; on failure it prints
//! the error chain on stderr and exits 1. The SDK's log goes to stderr (`RUST_LOG`, default
//! `info`); the test shows it only when the scenario fails.
//!
//! Every wait is bounded (`session::STEP_TIMEOUT_MS`, and `RUN_TIMEOUT_MS` for the whole run),
//! so a server that never answers fails the run instead of hanging it.

mod history;
mod scenarios;
mod session;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::session::User;

/// Upper bound for one whole scenario run, server round trips and crypto included.
const RUN_TIMEOUT_MS: u64 = 120_000;

fn usage() -> String {
    let names: Vec<&str> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
    format!(
        "usage: ward-testclient <homeserver-url> <scenario>   (users in WARD_TESTCLIENT_USERS)\n\
         scenarios: {}",
        names.join(", ")
    )
}

fn users_from_env() -> anyhow::Result<Vec<User>> {
    let raw = std::env::var("WARD_TESTCLIENT_USERS").context("WARD_TESTCLIENT_USERS is not set")?;
    let value: serde_json::Value = serde_json::from_str(&raw).context("WARD_TESTCLIENT_USERS is not JSON")?;
    let Some(list) = value.as_array() else { bail!("WARD_TESTCLIENT_USERS must be a JSON array") };
    list.iter()
        .map(|u| {
            let field = |name: &str| {
                u.get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .with_context(|| format!("a user in WARD_TESTCLIENT_USERS has no string {name:?}"))
            };
            Ok(User { name: field("user")?, password: field("password")? })
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for s in scenarios::SCENARIOS {
            println!("{:<8} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let [homeserver, scenario] = args.as_slice() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let Some(scenario) = scenarios::SCENARIOS.iter().find(|s| s.name == scenario) else {
        eprintln!("unknown scenario {scenario:?}\n{}", usage());
        return ExitCode::from(2);
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .compact()
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ward-testclient: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let result = runtime.block_on(async {
        let users = users_from_env()?;
        if users.len() < scenario.users {
            bail!(
                "scenario {:?} needs {} users, WARD_TESTCLIENT_USERS has {}",
                scenario.name,
                scenario.users,
                users.len()
            );
        }
        let ctx = scenarios::Context { homeserver: homeserver.clone(), users };
        tokio::time::timeout(Duration::from_millis(RUN_TIMEOUT_MS), (scenario.run)(ctx))
            .await
            .with_context(|| format!("scenario did not finish within {RUN_TIMEOUT_MS} ms"))?
    });
    // Sync loops and SDK tasks may still be parked in long polls; do not wait for them.
    runtime.shutdown_background();

    match result {
        Ok(report) => {
            let out = json!({
                "scenario": scenario.name,
                "ok": true,
                "elapsed_ms": started.elapsed().as_millis() as u64,
                "report": report,
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ward-testclient: scenario {:?} failed: {e:#}", scenario.name);
            ExitCode::FAILURE
        }
    }
}
