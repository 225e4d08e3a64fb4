//! Ward's configuration.
//!
//! Sources, later ones winning: built-in defaults, the TOML file (`--config PATH`, else
//! `./ward.toml` if it exists), then environment variables `WARD_<KEY>` (the key upper-cased:
//! `WARD_SERVER_NAME`, `WARD_LISTEN`, …). List values in the environment are comma-separated.
//! Every key, its default and its meaning is in `docs/ward.example.toml`; a test keeps that file
//! and [`Config::default`] in step.
//!
//! Loading validates everything before anything is created on disk; an error names the key and
//! where its value came from.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Only `ward admin create-user` makes accounts.
    Closed,
    /// Registration needs a token from `ward admin registration-token create`.
    Token,
    /// Anyone who can reach the server may register.
    Open,
}

/// Which new rooms get end-to-end encryption switched on from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionDefault {
    /// Rooms created with the `private_chat` or `trusted_private_chat` preset, and direct chats.
    Private,
    /// Every new room, public ones included.
    All,
    /// None; clients decide.
    Off,
}

/// Which estimate of a conference participant's downlink picks the video quality it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtcBandwidthEstimator {
    /// Ward's own, from loss and round-trip times; packets leave as soon as they are forwarded.
    Ward,
    /// str0m's delay-based estimator with its pacer: smoother sending, less throughput.
    Str0m,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server_name: String,
    pub listen: String,
    pub public_base_url: String,
    pub data_dir: PathBuf,
    pub registration: RegistrationMode,
    pub reserved_usernames: Vec<String>,
    pub password_min_length: u32,
    pub max_request_body_bytes: u64,
    pub max_upload_bytes: u64,
    pub media_quota_bytes_per_user: u64,
    pub media_legacy_unauthenticated: bool,
    pub http_request_timeout_ms: u64,
    pub access_token_lifetime_ms: u64,
    pub login_failures_burst: u32,
    pub login_failures_refill_ms: u64,
    pub login_throttle_max_keys: u64,
    pub uia_session_timeout_ms: u64,
    pub max_devices_per_user: u32,
    pub default_room_version: String,
    pub sync_timeout_max_ms: u64,
    pub presence_enabled: bool,
    pub encryption_by_default: EncryptionDefault,
    pub to_device_queue_max: u64,
    pub turn_uris: Vec<String>,
    pub turn_shared_secret: String,
    pub turn_user_lifetime_ms: u64,
    pub trust_x_forwarded_for: bool,
    pub metrics_listen: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub sqlite_read_connections: u32,
    pub web_dir: String,
    pub rtc_enabled: bool,
    pub rtc_api_key: String,
    pub rtc_api_secret: String,
    pub rtc_udp_port: u16,
    pub rtc_udp_bind: String,
    pub rtc_tcp_enabled: bool,
    pub rtc_tcp_port: u16,
    pub rtc_public_ip: String,
    pub rtc_max_participants_per_room: u32,
    pub rtc_max_participants: u32,
    pub rtc_max_tracks_per_participant: u32,
    pub rtc_max_bitrate_bps_per_track: u64,
    pub rtc_empty_room_timeout_ms: u64,
    pub rtc_token_max_ttl_ms: u64,
    pub rtc_bandwidth_estimator: RtcBandwidthEstimator,
    pub meeting_retention_days: u32,
    /// A guest waiting in a lobby whose page has not asked for this long is dropped from it
    /// (a patient's link works again).
    pub meeting_knock_expiry_ms: u64,
}

/// Longest `meeting_retention_days`: video consultation metadata may be kept three months at
/// most (Anlage 31b BMV-Ä).
pub const MEETING_RETENTION_DAYS_MAX: u32 = 90;

/// Shortest `rtc_api_secret` accepted; LiveKit's server refuses shorter secrets too, so a
/// secret that works with Ward also works with LiveKit's tools.
pub const RTC_API_SECRET_MIN_CHARS: usize = 32;

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".into(),
            listen: "127.0.0.1:8008".into(),
            public_base_url: String::new(),
            data_dir: PathBuf::from("./ward-data"),
            registration: RegistrationMode::Token,
            reserved_usernames: ["admin", "administrator", "root", "ward", "support", "postmaster", "abuse"]
                .map(String::from)
                .to_vec(),
            password_min_length: 8,
            max_request_body_bytes: 1024 * 1024,
            max_upload_bytes: 50 * 1024 * 1024,
            media_quota_bytes_per_user: 10 * 1024 * 1024 * 1024,
            media_legacy_unauthenticated: false,
            http_request_timeout_ms: 120_000,
            access_token_lifetime_ms: 300_000,
            login_failures_burst: 5,
            login_failures_refill_ms: 60_000,
            login_throttle_max_keys: 100_000,
            uia_session_timeout_ms: 600_000,
            max_devices_per_user: 100,
            default_room_version: "12".into(),
            sync_timeout_max_ms: 60_000,
            presence_enabled: false,
            encryption_by_default: EncryptionDefault::Private,
            to_device_queue_max: 10_000,
            turn_uris: Vec::new(),
            turn_shared_secret: String::new(),
            turn_user_lifetime_ms: 86_400_000,
            trust_x_forwarded_for: false,
            metrics_listen: String::new(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            sqlite_read_connections: 4,
            web_dir: String::new(),
            rtc_enabled: true,
            rtc_api_key: "ward".into(),
            rtc_api_secret: String::new(),
            // LiveKit's single-port UDP ("UDP mux") default, so firewall guides for LiveKit fit.
            rtc_udp_port: 7882,
            // Loopback like `listen`: the defaults work on this machine and expose nothing.
            rtc_udp_bind: "127.0.0.1".into(),
            rtc_tcp_enabled: true,
            rtc_tcp_port: 7881,
            rtc_public_ip: String::new(),
            rtc_max_participants_per_room: 100,
            rtc_max_participants: 1000,
            rtc_max_tracks_per_participant: 8,
            rtc_max_bitrate_bps_per_track: 5_000_000,
            rtc_empty_room_timeout_ms: 300_000,
            // LiveKit's SDKs mint tokens for six hours by default.
            rtc_token_max_ttl_ms: 21_600_000,
            rtc_bandwidth_estimator: RtcBandwidthEstimator::Ward,
            // Anlage 31b BMV-Ä: video consultation metadata is kept three months at most.
            meeting_retention_days: 90,
            meeting_knock_expiry_ms: 120_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid config key `{key}` (from {source_name}): {message}")]
    Key { key: String, source_name: String, message: String },
}

/// What was loaded, with warnings for the operator (unknown `WARD_*` variables).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
    pub warnings: Vec<String>,
}

/// Environment variables starting with `WARD_` that are not config keys but are understood
/// elsewhere, so they draw no warning.
const NON_KEY_VARIABLES: &[&str] = &["WARD_CONFIG", "WARD_LOG"];

impl Config {
    /// Loads from `explicit_path` (which must exist) or `./ward.toml` (if it exists), then the
    /// given environment.
    pub fn load(
        explicit_path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let path = match explicit_path {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from("ward.toml")).filter(|p| p.is_file()),
        };
        let mut table = toml::Table::new();
        let mut origin: std::collections::HashMap<String, String> = Default::default();
        if let Some(path) = &path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read { path: path.clone(), message: e.to_string() })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax { path: path.clone(), message: e.to_string() })?;
            for key in table.keys() {
                origin.insert(key.clone(), path.display().to_string());
            }
        }

        let defaults = default_table();
        let mut warnings = Vec::new();
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("WARD_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(default) = defaults.get(&key) else {
                if !NON_KEY_VARIABLES.contains(&name.as_str()) {
                    warnings.push(format!("ignoring environment variable {name}: no config key `{key}`"));
                }
                continue;
            };
            let parsed = env_value(default, &value).map_err(|message| ConfigError::Key {
                key: key.clone(),
                source_name: name.clone(),
                message,
            })?;
            table.insert(key.clone(), parsed);
            origin.insert(key, name);
        }

        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let key = key.split('.').next().unwrap_or_default().to_owned();
            let source_name = origin.get(&key).cloned().unwrap_or_else(|| "the config file".into());
            ConfigError::Key { key, source_name, message: e.into_inner().to_string() }
        })?;
        config.validate().map_err(|(key, message)| ConfigError::Key {
            source_name: origin.get(key).cloned().unwrap_or_else(|| "defaults".into()),
            key: key.to_owned(),
            message,
        })?;
        Ok(Loaded { config, source: path, warnings })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !is_valid_server_name(&self.server_name) {
            return Err(("server_name", format!("`{}` is not a valid Matrix server name", self.server_name)));
        }
        self.listen_addr().map_err(|m| ("listen", m))?;
        self.metrics_addr().map_err(|m| ("metrics_listen", m))?;
        let url = &self.public_base_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err(("public_base_url", "must start with https:// or http://".into()));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(("data_dir", "must not be empty".into()));
        }
        let positive: [(&'static str, u64); 20] = [
            ("to_device_queue_max", self.to_device_queue_max),
            ("turn_user_lifetime_ms", self.turn_user_lifetime_ms),
            ("sync_timeout_max_ms", self.sync_timeout_max_ms),
            ("password_min_length", self.password_min_length.into()),
            ("max_request_body_bytes", self.max_request_body_bytes),
            ("http_request_timeout_ms", self.http_request_timeout_ms),
            ("access_token_lifetime_ms", self.access_token_lifetime_ms),
            ("login_failures_burst", self.login_failures_burst.into()),
            ("login_failures_refill_ms", self.login_failures_refill_ms),
            ("login_throttle_max_keys", self.login_throttle_max_keys),
            ("uia_session_timeout_ms", self.uia_session_timeout_ms),
            ("max_devices_per_user", self.max_devices_per_user.into()),
            ("sqlite_read_connections", self.sqlite_read_connections.into()),
            ("rtc_max_participants_per_room", self.rtc_max_participants_per_room.into()),
            ("rtc_max_participants", self.rtc_max_participants.into()),
            ("rtc_max_tracks_per_participant", self.rtc_max_tracks_per_participant.into()),
            ("rtc_max_bitrate_bps_per_track", self.rtc_max_bitrate_bps_per_track),
            ("rtc_empty_room_timeout_ms", self.rtc_empty_room_timeout_ms),
            ("rtc_token_max_ttl_ms", self.rtc_token_max_ttl_ms),
            ("meeting_knock_expiry_ms", self.meeting_knock_expiry_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be greater than 0".into()));
        }
        if !(1..=MEETING_RETENTION_DAYS_MAX).contains(&self.meeting_retention_days) {
            return Err((
                "meeting_retention_days",
                format!(
                    "must be between 1 and {MEETING_RETENTION_DAYS_MAX} (three months at most for video consultations)"
                ),
            ));
        }
        if self.max_upload_bytes == 0 {
            return Err(("max_upload_bytes", "must be greater than 0".into()));
        }
        if self.sync_timeout_max_ms >= self.http_request_timeout_ms {
            return Err((
                "sync_timeout_max_ms",
                format!(
                    "must be shorter than http_request_timeout_ms ({} ms), or long-polling syncs are cut off",
                    self.http_request_timeout_ms
                ),
            ));
        }
        if let Some(bad) =
            self.turn_uris.iter().find(|u| !["turn:", "turns:", "stun:"].iter().any(|p| u.starts_with(p)))
        {
            return Err(("turn_uris", format!("`{bad}` is not a turn:, turns: or stun: URI")));
        }
        if !self.turn_uris.is_empty() && self.turn_shared_secret.is_empty() {
            return Err((
                "turn_shared_secret",
                "must be set when turn_uris is (the TURN server's static-auth-secret)".into(),
            ));
        }
        if !["10", "11", "12"].contains(&self.default_room_version.as_str()) {
            return Err(("default_room_version", "must be one of \"10\", \"11\", \"12\"".into()));
        }
        if !["trace", "debug", "info", "warn", "error"].contains(&self.log_level.as_str()) {
            return Err(("log_level", "must be one of trace, debug, info, warn, error".into()));
        }
        self.validate_rtc()
    }

    fn validate_rtc(&self) -> Result<(), (&'static str, String)> {
        if self.rtc_api_key.is_empty() {
            return Err((
                "rtc_api_key",
                "must not be empty (it names the key in every conferencing token)".into(),
            ));
        }
        if self.rtc_api_key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(("rtc_api_key", "must not contain spaces or control characters".into()));
        }
        if !self.rtc_api_secret.is_empty() && self.rtc_api_secret.chars().count() < RTC_API_SECRET_MIN_CHARS {
            return Err((
                "rtc_api_secret",
                format!(
                    "must be at least {RTC_API_SECRET_MIN_CHARS} characters, or empty to let Ward generate one \
                     in data_dir/rtc_api_secret"
                ),
            ));
        }
        self.rtc_udp_addr().map_err(|m| ("rtc_udp_bind", m))?;
        if !self.rtc_public_ip.is_empty() {
            let ip: IpAddr = self.rtc_public_ip.parse().map_err(|_| {
                ("rtc_public_ip", format!("`{}` is not an IP address like 203.0.113.7", self.rtc_public_ip))
            })?;
            if ip.is_unspecified() {
                return Err((
                    "rtc_public_ip",
                    "must be an address clients can reach, not an unspecified one".into(),
                ));
            }
        }
        if self.rtc_enabled {
            self.rtc_announced_ip().map_err(|m| ("rtc_public_ip", m))?;
        }
        if self.rtc_max_participants_per_room > self.rtc_max_participants {
            return Err((
                "rtc_max_participants_per_room",
                format!("must not exceed rtc_max_participants ({})", self.rtc_max_participants),
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| format!("`{}` is not an address like 127.0.0.1:8008", self.listen))
    }

    /// `None` when metrics are off (the default).
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.metrics_listen.is_empty() {
            return Ok(None);
        }
        self.metrics_listen
            .parse()
            .map(Some)
            .map_err(|_| format!("`{}` is not an address like 127.0.0.1:9108", self.metrics_listen))
    }

    /// The URL clients should use, for `/.well-known/matrix/client`.
    pub fn base_url(&self) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_base_url.trim_end_matches('/').to_owned()
        }
    }

    /// Where the SFU's UDP socket listens (port 0: any free port).
    /// Where the ICE-TCP listener binds: the UDP socket's address with `rtc_tcp_port`.
    pub fn rtc_tcp_addr(&self) -> Result<Option<SocketAddr>, String> {
        if !self.rtc_tcp_enabled {
            return Ok(None);
        }
        Ok(Some(SocketAddr::new(self.rtc_udp_addr()?.ip(), self.rtc_tcp_port)))
    }

    pub fn rtc_udp_addr(&self) -> Result<SocketAddr, String> {
        let ip: IpAddr = self
            .rtc_udp_bind
            .parse()
            .map_err(|_| format!("`{}` is not an IP address like 0.0.0.0 or 127.0.0.1", self.rtc_udp_bind))?;
        Ok(SocketAddr::new(ip, self.rtc_udp_port))
    }

    /// The address clients are told to send media to (the ICE host candidate): `rtc_public_ip`,
    /// else the bind address — which must then be a concrete one, since 0.0.0.0 reaches nobody.
    pub fn rtc_announced_ip(&self) -> Result<IpAddr, String> {
        if !self.rtc_public_ip.is_empty() {
            return self
                .rtc_public_ip
                .parse()
                .map_err(|_| format!("`{}` is not an IP address", self.rtc_public_ip));
        }
        let bind = self.rtc_udp_addr()?.ip();
        if bind.is_unspecified() {
            return Err(format!(
                "must be set when rtc_udp_bind is {bind}: it is the address clients send call audio and \
                 video to (this server's public IP address), or set rtc_enabled = false"
            ));
        }
        Ok(bind)
    }

    /// Where Ward keeps the conferencing API secret it generated (when `rtc_api_secret` is
    /// empty).
    pub fn rtc_api_secret_path(&self) -> PathBuf {
        self.data_dir.join("rtc_api_secret")
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("ward.db")
    }

    /// Where uploaded files live (a content-addressed blob store).
    pub fn media_path(&self) -> PathBuf {
        self.data_dir.join("media")
    }
}

fn default_table() -> toml::Table {
    // Serialising the defaults cannot fail: every field is a plain TOML type.
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

/// Parses an environment value as the type of the key's default.
fn env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    Ok(match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => {
            Value::Integer(raw.trim().parse().map_err(|_| format!("`{raw}` is not a whole number"))?)
        }
        Value::Boolean(_) => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("`{raw}` is not true or false")),
        }),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        other => {
            return Err(format!("cannot be set from the environment ({})", other.type_str()));
        }
    })
}

/// Server names per <https://spec.matrix.org/latest/appendices/#server-name>: a DNS name or IP
/// literal, with an optional port.
fn is_valid_server_name(name: &str) -> bool {
    let valid_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = name.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok && v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let (host, port) = match name.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (name, None),
    };
    port.is_none_or(valid_port)
        && !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write(text: &str) -> (tempfile_lite::Dir, PathBuf) {
        let dir = tempfile_lite::Dir::new();
        let path = dir.0.join("ward.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A tiny temporary directory helper, to keep this crate free of test dependencies.
    mod tempfile_lite {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("ward-config-test-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.listen, "127.0.0.1:8008");
        assert_eq!(c.server_name, "localhost");
        assert_eq!(c.data_dir, PathBuf::from("./ward-data"));
        assert_eq!(c.registration, RegistrationMode::Token);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn example_config_lists_every_key_with_its_default() {
        let text = include_str!("../../../docs/ward.example.toml");
        let parsed: toml::Table = text.parse().expect("example parses");
        let defaults = default_table();
        let mut want: Vec<_> = defaults.keys().collect();
        let mut have: Vec<_> = parsed.keys().collect();
        want.sort();
        have.sort();
        assert_eq!(have, want, "docs/ward.example.toml must list every key");
        let config: Config = toml::Value::Table(parsed).try_into().expect("example is a valid config");
        assert_eq!(config, Config::default(), "example values must be the defaults");
    }

    #[test]
    fn file_then_environment() {
        let (_d, path) = write(
            "server_name = \"praxis.example\"\nregistration = \"token\"\nlisten = \"127.0.0.1:9000\"\n",
        );
        let loaded = Config::load(
            Some(&path),
            env(&[
                ("WARD_LISTEN", "127.0.0.1:9001"),
                ("WARD_TRUST_X_FORWARDED_FOR", "true"),
                ("WARD_RESERVED_USERNAMES", "a, b*"),
                ("WARD_MAX_REQUEST_BODY_BYTES", "2048"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.server_name, "praxis.example");
        assert_eq!(c.registration, RegistrationMode::Token);
        assert_eq!(c.listen, "127.0.0.1:9001");
        assert!(c.trust_x_forwarded_for);
        assert_eq!(c.reserved_usernames, ["a", "b*"]);
        assert_eq!(c.max_request_body_bytes, 2048);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_source() {
        let e =
            Config::load(None::<&Path>, env(&[("WARD_REGISTRATION", "sometimes")])).unwrap_err().to_string();
        assert!(e.contains("`registration`") && e.contains("WARD_REGISTRATION"), "{e}");
        let e = Config::load(None::<&Path>, env(&[("WARD_LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("`listen`") && e.contains("WARD_LISTEN"), "{e}");
        let e = Config::load(None::<&Path>, env(&[("WARD_HTTP_REQUEST_TIMEOUT_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http_request_timeout_ms"), "{e}");
        let (_d, path) = write("server_nme = \"x\"\n");
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("server_nme"), "{e}");
        let (_d, path) = write("max_request_body_bytes = \"big\"\n");
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("`max_request_body_bytes`") && e.contains("ward.toml"), "{e}");
        let (_d, path) = write("server_name = \"bad name!\"\n");
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("`server_name`"), "{e}");
        let (_d, path) = write("this is not toml");
        assert!(matches!(Config::load(Some(&path), env(&[])), Err(ConfigError::Syntax { .. })));
        assert!(matches!(
            Config::load(Some(Path::new("/nonexistent/ward.toml")), env(&[])),
            Err(ConfigError::Read { .. })
        ));
        let e =
            Config::load(None::<&Path>, env(&[("WARD_LOGIN_FAILURES_BURST", "0")])).unwrap_err().to_string();
        assert!(e.contains("login_failures_burst"), "{e}");
    }

    #[test]
    fn turn_settings() {
        let loaded = Config::load(
            None::<&Path>,
            env(&[
                ("WARD_TURN_URIS", "turn:turn.example:3478?transport=udp, turns:turn.example:5349"),
                ("WARD_TURN_SHARED_SECRET", "s3cret"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.turn_uris.len(), 2);
        let e = Config::load(None::<&Path>, env(&[("WARD_TURN_URIS", "turn:turn.example")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`turn_shared_secret`"), "{e}");
        let e = Config::load(
            None::<&Path>,
            env(&[("WARD_TURN_URIS", "https://turn.example"), ("WARD_TURN_SHARED_SECRET", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`turn_uris`"), "{e}");
    }

    #[test]
    fn rtc_settings() {
        let c = Config::default();
        assert_eq!(c.rtc_udp_addr().unwrap(), "127.0.0.1:7882".parse().unwrap());
        assert_eq!(c.rtc_announced_ip().unwrap(), "127.0.0.1".parse::<IpAddr>().unwrap());

        let loaded = Config::load(
            None::<&Path>,
            env(&[
                ("WARD_RTC_UDP_BIND", "0.0.0.0"),
                ("WARD_RTC_UDP_PORT", "0"),
                ("WARD_RTC_PUBLIC_IP", "203.0.113.7"),
                ("WARD_RTC_API_SECRET", &"s".repeat(RTC_API_SECRET_MIN_CHARS)),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.rtc_udp_addr().unwrap(), "0.0.0.0:0".parse().unwrap());
        assert_eq!(loaded.config.rtc_announced_ip().unwrap(), "203.0.113.7".parse::<IpAddr>().unwrap());

        let refused = |pairs: &[(&str, &str)], key: &str| {
            let e = Config::load(None::<&Path>, env(pairs)).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{pairs:?}: {e}");
            e
        };
        let e = refused(&[("WARD_RTC_UDP_BIND", "0.0.0.0")], "rtc_public_ip");
        assert!(e.contains("must be set"), "{e}");
        refused(&[("WARD_RTC_UDP_BIND", "::")], "rtc_public_ip");
        refused(&[("WARD_RTC_UDP_BIND", "localhost")], "rtc_udp_bind");
        refused(&[("WARD_RTC_UDP_PORT", "70000")], "rtc_udp_port");
        refused(&[("WARD_RTC_PUBLIC_IP", "rtc.praxis.example")], "rtc_public_ip");
        refused(&[("WARD_RTC_PUBLIC_IP", "0.0.0.0")], "rtc_public_ip");
        refused(&[("WARD_RTC_API_SECRET", "short")], "rtc_api_secret");
        refused(&[("WARD_RTC_API_KEY", "")], "rtc_api_key");
        refused(&[("WARD_RTC_API_KEY", "my key")], "rtc_api_key");
        refused(&[("WARD_RTC_MAX_PARTICIPANTS", "0")], "rtc_max_participants");
        refused(&[("WARD_RTC_TOKEN_MAX_TTL_MS", "0")], "rtc_token_max_ttl_ms");
        refused(&[("WARD_RTC_MAX_PARTICIPANTS", "10")], "rtc_max_participants_per_room");
        // Meeting metadata is kept three months at most, and at least a day.
        let e = refused(&[("WARD_MEETING_RETENTION_DAYS", "91")], "meeting_retention_days");
        assert!(e.contains("three months"), "{e}");
        refused(&[("WARD_MEETING_RETENTION_DAYS", "0")], "meeting_retention_days");
        let loaded = Config::load(None::<&Path>, env(&[("WARD_MEETING_RETENTION_DAYS", "30")])).unwrap();
        assert_eq!(loaded.config.meeting_retention_days, 30);

        // Conferencing off: nothing needs announcing.
        let loaded = Config::load(
            None::<&Path>,
            env(&[("WARD_RTC_ENABLED", "false"), ("WARD_RTC_UDP_BIND", "0.0.0.0")]),
        )
        .unwrap();
        assert!(!loaded.config.rtc_enabled);
    }

    #[test]
    fn unknown_ward_variables_warn() {
        let loaded =
            Config::load(None::<&Path>, env(&[("WARD_REGISTRATON", "open"), ("WARD_CONFIG", "x")])).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("WARD_REGISTRATON"));
    }

    #[test]
    fn server_names() {
        for ok in ["localhost", "example.org", "example.org:8448", "1.2.3.4", "[::1]", "[::1]:80"] {
            assert!(is_valid_server_name(ok), "{ok}");
        }
        for bad in ["", "a b", "x:", "x:port", "[zz]", "ex_ample.org"] {
            assert!(!is_valid_server_name(bad), "{bad}");
        }
    }
}
