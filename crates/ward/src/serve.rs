//! `ward serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_api::{ApiSettings, AppState};
use ward_config::{Loaded, RegistrationMode};

pub async fn run(loaded: Loaded, config_arg: Option<PathBuf>) -> Result<(), String> {
    let config = loaded.config;
    let listen = config.listen_addr()?;
    let metrics_addr = config.metrics_addr()?;
    // Before anything that records: the SFU's task, the background tasks. A handle taken
    // before the recorder is installed records nothing, ever.
    if let Some(addr) = metrics_addr {
        start_metrics(addr).await?;
    }
    let (_store, services) = crate::open_services(&config).await?;
    // After open_services, which creates the data directory the generated secret lives in.
    let rtc = if config.rtc_enabled {
        let settings = crate::rtc::settings(&config)?;
        tracing::info!(
            udp = %settings.udp_bind,
            announced_ip = %settings.public_ip,
            api_key = %settings.keys.key,
            "conferencing is on"
        );
        let udp = settings.udp_bind;
        let rtc = ward_rtc::Rtc::start(settings)
            .await
            .map_err(|e| format!("cannot open the media UDP port {udp} (rtc_udp_bind, rtc_udp_port): {e}"))?;
        Some(Arc::new(rtc))
    } else {
        tracing::info!("conferencing is off (rtc_enabled = false)");
        None
    };

    crate::meet::wire(&services, rtc.as_ref());

    let state = AppState {
        services: services.clone(),
        api: Arc::new(ApiSettings {
            base_url: config.base_url(),
            max_request_body_bytes: usize::try_from(config.max_request_body_bytes).unwrap_or(usize::MAX),
            http_request_timeout_ms: config.http_request_timeout_ms,
            trust_x_forwarded_for: config.trust_x_forwarded_for,
            web_dir: (!config.web_dir.is_empty()).then(|| std::path::PathBuf::from(&config.web_dir)),
        }),
        rtc,
    };
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;

    match config.registration {
        RegistrationMode::Open => tracing::warn!(
            "registration is OPEN: anyone who can reach this server can create an account. \
             Use registration = \"token\" or \"closed\" unless that is really wanted."
        ),
        RegistrationMode::Token => {
            tracing::info!("registration needs a token (ward admin registration-token create)")
        }
        RegistrationMode::Closed => {
            tracing::info!("registration is closed; accounts come from ward admin create-user")
        }
    }
    if services.count_accounts().await.map_err(|e| e.to_string())? == 0 {
        let config_flag = config_arg.map(|p| format!(" --config {}", p.display())).unwrap_or_default();
        tracing::warn!(
            "no accounts yet. Create the first administrator with:\n\n    ward{config_flag} admin create-user NAME --admin\n"
        );
    }
    tracing::info!(
        %listen,
        server_name = %config.server_name,
        data_dir = %config.data_dir.display(),
        "Ward {} is listening",
        env!("CARGO_PKG_VERSION")
    );

    let app = ward_api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// How often histogram observations are folded into their buckets.
const METRICS_UPKEEP_INTERVAL_MS: u64 = 5_000;

async fn start_metrics(addr: SocketAddr) -> Result<(), String> {
    use metrics_exporter_prometheus::Matcher;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(ward_rtc::runtime::FORWARD_DELAY_METRIC.into()),
                ward_rtc::runtime::FORWARD_DELAY_BUCKETS_S,
            )
        })
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    // Histograms keep every observation until they are folded into buckets, which a scrape or
    // this upkeep does: without it, a server nobody scrapes would grow without bound.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(METRICS_UPKEEP_INTERVAL_MS)).await;
            upkeep.run_upkeep();
        }
    });
    let listener =
        TcpListener::bind(addr).await.map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics at /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, ward_api::metrics_router(handle)).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
