//! `ward admin …`: operator tasks. They open the same database as the server (SQLite allows a
//! second process), so they work while the server runs.

use std::io::BufRead;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use ward_config::Config;
use ward_service::NewRegistrationToken;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account (reserved names allowed). Prints a generated password if none is given.
    CreateUser {
        /// Username (localpart), e.g. `alice`, or a full user ID.
        name: String,
        /// Make the account a server administrator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a new password; the user is logged out everywhere.
    ResetPassword {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Deactivate an account for good: logged out everywhere, can never log in again.
    Deactivate { name: String },
    /// Registration tokens, for `registration = "token"`.
    #[command(subcommand)]
    RegistrationToken(TokenCommand),
    /// Reports of events and rooms that users sent (`/report`).
    #[command(subcommand)]
    Reports(ReportsCommand),
    /// Meetings and video consultations that have not ended.
    #[command(subcommand)]
    Meetings(MeetingsCommand),
    /// Print a conferencing access token (LiveKit format) signed with the server's API key,
    /// to try a room with LiveKit's SDKs and tools.
    RtcToken(RtcTokenArgs),
}

#[derive(Args)]
pub struct RtcTokenArgs {
    /// The room (conference) the token admits to.
    #[arg(long)]
    room: String,
    /// The participant's identity, unique within the room.
    #[arg(long)]
    identity: String,
    /// Display name shown to the others.
    #[arg(long)]
    name: Option<String>,
    /// Lifetime: seconds, or a number with s, m, h or d (e.g. 90m). Default: 1h, or
    /// rtc_token_max_ttl_ms if that is shorter; at most rtc_token_max_ttl_ms.
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<Duration>,
    /// May not publish audio, video or data (watch and listen only).
    #[arg(long)]
    no_publish: bool,
    /// May not receive the others' audio and video.
    #[arg(long)]
    no_subscribe: bool,
    /// Not shown to the other participants (e.g. for a monitor).
    #[arg(long)]
    hidden: bool,
}

/// Default lifetime of `ward admin rtc-token` tokens: long enough for a test session.
const RTC_TOKEN_DEFAULT_TTL: Duration = Duration::from_secs(3600);

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_s) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3600),
        Some((i, 'd')) => (&text[..i], 86_400),
        _ => (text, 1),
    };
    let n: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like 3600, 90m, 1h or 2d"))?;
    match n.checked_mul(unit_s) {
        Some(0) => Err("the lifetime must be at least one second".into()),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Err(format!("`{text}` is too long")),
    }
}

/// Needs no database: a token is only a signature with the configured key.
fn rtc_token(args: &RtcTokenArgs, config: &Config) -> Result<(), String> {
    if !config.rtc_enabled {
        return Err("conferencing is off (rtc_enabled = false), so no token would be accepted".into());
    }
    let keys = crate::rtc::existing_keys(config)?;
    let max = Duration::from_millis(config.rtc_token_max_ttl_ms);
    let ttl = args.ttl.unwrap_or(RTC_TOKEN_DEFAULT_TTL.min(max));
    if ttl > max {
        return Err(format!(
            "--ttl {} s is longer than rtc_token_max_ttl_ms allows ({} s)",
            ttl.as_secs(),
            max.as_secs()
        ));
    }
    let mut request = ward_rtc::MintRequest::new(&args.identity, &args.room, ttl);
    request.name = args.name.clone().unwrap_or_default();
    request.can_publish = !args.no_publish;
    request.can_publish_data = !args.no_publish;
    request.can_subscribe = !args.no_subscribe;
    request.hidden = args.hidden;
    let token = ward_rtc::mint(&keys, &request, SystemTime::now()).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}

#[derive(Subcommand)]
pub enum ReportsCommand {
    /// List reports, newest first: ID, time, reporter, room, event, score, reason.
    List {
        /// How many to show (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only reports older than this report ID (to page further back).
        #[arg(long)]
        before: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum MeetingsCommand {
    /// List open meetings, newest first: ID, kind, created, last used, creator, chat room,
    /// locked, PIN. (Titles are left out: they may name patients.)
    List {
        /// How many to show (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// End a meeting for everyone: its link, knocks and patient links stop working at once;
    /// the running server disconnects those still in the call within half a minute.
    End { meeting_id: String },
}

/// Most meetings `ward admin meetings list` shows.
const MEETINGS_LIST_MAX: u64 = 1000;

#[derive(Args)]
pub struct PasswordArgs {
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it.
    Create {
        /// How many registrations it allows (default: unlimited).
        #[arg(long)]
        uses: Option<u32>,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Use this token instead of a generated one (A-Z a-z 0-9 . _ ~ -, at most 64).
        #[arg(long)]
        token: Option<String>,
    },
    /// List all tokens with their uses and expiry.
    List,
    /// Delete a token; it can no longer be used.
    Revoke { token: String },
}

impl PasswordArgs {
    /// The given password, or one read from stdin, or a generated one (then `true`).
    fn resolve(&self) -> Result<(String, bool), String> {
        if let Some(p) = &self.password {
            return Ok((p.clone(), false));
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let p = line.trim_end_matches(['\n', '\r']).to_owned();
            if p.is_empty() {
                return Err("no password on standard input".into());
            }
            return Ok((p, false));
        }
        Ok((ward_service::generate_password(), true))
    }
}

fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm), to avoid a date crate.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

pub async fn run(cmd: AdminCommand, config: &Config) -> Result<(), String> {
    if let AdminCommand::RtcToken(args) = &cmd {
        // Before open_services, which would create the data directory and database.
        return rtc_token(args, config);
    }
    let (_store, services) = crate::open_services(config).await?;
    let err = |e: ward_service::Error| e.to_string();
    match cmd {
        AdminCommand::CreateUser { name, admin, password } => {
            let (password, generated) = password.resolve()?;
            let user_id = services.admin_create_user(&name, &password, admin).await.map_err(err)?;
            println!("created {user_id}{}", if admin { " (administrator)" } else { "" });
            if generated {
                println!("password: {password}");
                println!("(shown once; the user should change it after the first login)");
            }
        }
        AdminCommand::ResetPassword { name, password } => {
            let (password, generated) = password.resolve()?;
            let user_id = services.admin_reset_password(&name, &password).await.map_err(err)?;
            println!("new password set for {user_id}; all of its devices were logged out");
            if generated {
                println!("password: {password}");
            }
        }
        AdminCommand::Deactivate { name } => {
            let user_id = services.admin_deactivate(&name).await.map_err(err)?;
            println!("deactivated {user_id}");
        }
        AdminCommand::RegistrationToken(TokenCommand::Create { uses, expires_in_days, token }) => {
            let expires_ms = expires_in_days.map(|d| ward_service::now_ms() + u64::from(d) * 86_400_000);
            let t = services
                .admin_create_registration_token(NewRegistrationToken {
                    token,
                    uses_allowed: uses,
                    expires_ms,
                })
                .await
                .map_err(err)?;
            println!("{}", t.token);
        }
        AdminCommand::RegistrationToken(TokenCommand::List) => {
            let tokens = services.admin_registration_tokens().await.map_err(err)?;
            if tokens.is_empty() {
                println!("no registration tokens");
            }
            let now = ward_service::now_ms();
            for t in tokens {
                let uses = match t.uses_allowed {
                    Some(n) => format!("{}/{n} used", t.completed),
                    None => format!("{} used, unlimited", t.completed),
                };
                let expiry = t
                    .expires_ms
                    .map(|e| format!("expires {}", format_ms(e)))
                    .unwrap_or_else(|| "no expiry".into());
                let state = if t.is_valid(now) { "valid" } else { "INVALID" };
                println!("{}\t{state}\t{uses}\t{expiry}\tcreated {}", t.token, format_ms(t.created_ms));
            }
        }
        AdminCommand::Reports(ReportsCommand::List { limit, before }) => {
            let reports = services.admin_reports(before, limit).await.map_err(err)?;
            if reports.is_empty() {
                println!("no reports");
            }
            for r in reports {
                let r0 = &r.report;
                // Tabs and newlines in the user-written reason would break the columns.
                let reason = r0.reason.as_deref().unwrap_or("-").replace(['\t', '\n', '\r'], " ");
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{reason}",
                    r.id,
                    format_ms(r0.received_ms),
                    r0.reporter,
                    r0.room_id,
                    r0.event_id.as_deref().unwrap_or("(room)"),
                    r0.score.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                );
            }
        }
        AdminCommand::Meetings(MeetingsCommand::List { limit }) => {
            let meetings = services.admin_open_meetings(limit.min(MEETINGS_LIST_MAX)).await.map_err(err)?;
            if meetings.is_empty() {
                println!("no open meetings");
            }
            for m in meetings {
                println!(
                    "{}\t{}\tcreated {}\tused {}\t{}\t{}\t{}\t{}",
                    m.meeting_id,
                    m.kind.as_str(),
                    format_ms(m.created_ms),
                    format_ms(m.last_used_ms),
                    m.creator,
                    m.origin_room.as_deref().unwrap_or("-"),
                    if m.locked { "locked" } else { "open" },
                    if m.pin_hash.is_some() { "PIN" } else { "no PIN" },
                );
            }
        }
        AdminCommand::Meetings(MeetingsCommand::End { meeting_id }) => {
            services.admin_end_meeting(&meeting_id).await.map_err(err)?;
            println!("ended {meeting_id}");
        }
        AdminCommand::RtcToken(args) => rtc_token(&args, config)?,
        AdminCommand::RegistrationToken(TokenCommand::Revoke { token }) => {
            services.admin_revoke_registration_token(&token).await.map_err(err)?;
            println!("revoked {token}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls() {
        use std::time::Duration;
        let ok = |t: &str| super::parse_ttl(t).unwrap();
        assert_eq!(ok("3600"), Duration::from_secs(3600));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("90m"), Duration::from_secs(5400));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("2d"), Duration::from_secs(172_800));
        for bad in ["", "h", "1.5h", "-1h", "1w", "0", "0h", "99999999999999999999d"] {
            assert!(super::parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(super::format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_ms(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(super::format_ms(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
