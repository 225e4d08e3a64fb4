//! Conferencing settings from the configuration, and the API secret Ward generates when the
//! operator sets none.

use std::path::Path;
use std::time::Duration;

use ward_config::{Config, RTC_API_SECRET_MIN_CHARS, RtcBandwidthEstimator};
use ward_rtc::{ApiKeys, RtcSettings};

/// The resolved settings for `ward serve`. Without `rtc_api_secret`, the secret comes from
/// `data_dir/rtc_api_secret`, which is created on first use: tokens made by `ward admin
/// rtc-token` or by an application holding that secret keep working across restarts.
pub fn settings(config: &Config) -> Result<RtcSettings, String> {
    let secret = if config.rtc_api_secret.is_empty() {
        load_or_create_secret(&config.rtc_api_secret_path())?
    } else {
        config.rtc_api_secret.clone()
    };
    resolve(config, secret)
}

/// The keys `ward serve` uses, without creating anything: the admin CLI must not write a
/// secret file that a server running as another user could not read.
pub fn existing_keys(config: &Config) -> Result<ApiKeys, String> {
    if !config.rtc_api_secret.is_empty() {
        return Ok(ApiKeys { key: config.rtc_api_key.clone(), secret: config.rtc_api_secret.clone() });
    }
    let path = config.rtc_api_secret_path();
    match read_secret(&path)? {
        Some(secret) => Ok(ApiKeys { key: config.rtc_api_key.clone(), secret }),
        None => Err(format!(
            "no conferencing secret yet: rtc_api_secret is not set and {} does not exist. \
             Start `ward serve` once (it creates the file) or set rtc_api_secret.",
            path.display()
        )),
    }
}

fn resolve(config: &Config, secret: String) -> Result<RtcSettings, String> {
    // Config::load validated these already; the errors only guard against a Config built
    // another way.
    let udp_bind = config.rtc_udp_addr().map_err(|m| format!("rtc_udp_bind: {m}"))?;
    let public_ip = config.rtc_announced_ip().map_err(|m| format!("rtc_public_ip: {m}"))?;
    Ok(RtcSettings {
        keys: ApiKeys { key: config.rtc_api_key.clone(), secret },
        udp_bind,
        tcp_bind: config.rtc_tcp_addr().map_err(|m| format!("rtc_tcp_port: {m}"))?,
        public_ip,
        max_participants_per_room: config.rtc_max_participants_per_room,
        max_participants: config.rtc_max_participants,
        max_tracks_per_participant: config.rtc_max_tracks_per_participant,
        max_bitrate_bps_per_track: config.rtc_max_bitrate_bps_per_track,
        empty_room_timeout: Duration::from_millis(config.rtc_empty_room_timeout_ms),
        token_max_ttl: Duration::from_millis(config.rtc_token_max_ttl_ms),
        bandwidth_estimator: match config.rtc_bandwidth_estimator {
            RtcBandwidthEstimator::Ward => ward_sfu::BandwidthEstimator::Ward,
            RtcBandwidthEstimator::Str0m => ward_sfu::BandwidthEstimator::Str0m,
        },
    })
}

/// The secret file's content, or `None` if there is no file.
fn read_secret(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            if secret.chars().count() < RTC_API_SECRET_MIN_CHARS {
                return Err(format!(
                    "the conferencing secret in {} is unusable: shorter than {RTC_API_SECRET_MIN_CHARS} \
                     characters (delete the file to have a new one generated)",
                    path.display()
                ));
            }
            Ok(Some(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the conferencing secret {}: {e}", path.display())),
    }
}

fn load_or_create_secret(path: &Path) -> Result<String, String> {
    if let Some(secret) = read_secret(path)? {
        return Ok(secret);
    }
    let secret = ApiKeys::generate_secret();
    crate::write_private_file(path, format!("{secret}\n").as_bytes())
        .map_err(|e| format!("cannot write the conferencing secret {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the conferencing API secret");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config { data_dir: dir.to_owned(), ..Config::default() }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ward-rtc-secret-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn generated_secret_is_kept_owner_only_and_reused() {
        let dir = temp_dir("reuse");
        let config = config_in(&dir);
        assert!(existing_keys(&config).unwrap_err().contains("ward serve"));
        let first = settings(&config).unwrap();
        assert!(first.keys.secret.len() >= RTC_API_SECRET_MIN_CHARS);
        assert_eq!(settings(&config).unwrap().keys, first.keys);
        assert_eq!(existing_keys(&config).unwrap(), first.keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(config.rtc_api_secret_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn configured_secret_wins_and_bad_files_are_refused() {
        let dir = temp_dir("configured");
        let mut config = config_in(&dir);
        config.rtc_api_secret = "c".repeat(RTC_API_SECRET_MIN_CHARS);
        let s = settings(&config).unwrap();
        assert_eq!(s.keys.secret, config.rtc_api_secret);
        assert!(!config.rtc_api_secret_path().exists(), "nothing written when the config has a secret");
        assert_eq!(s.udp_bind, "127.0.0.1:7882".parse().unwrap());
        assert_eq!(s.token_max_ttl, Duration::from_secs(6 * 3600));

        config.rtc_api_secret.clear();
        std::fs::write(config.rtc_api_secret_path(), "short\n").unwrap();
        assert!(settings(&config).unwrap_err().contains("unusable"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
