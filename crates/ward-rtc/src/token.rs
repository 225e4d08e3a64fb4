//! LiveKit-format access tokens (JWT, HS256).
//!
//! A token is what a client shows to join a room: LiveKit's server SDKs (and Ward itself, with
//! [`mint`]) sign it with an API key's secret. The claims are the ones those SDKs write:
//! `iss` (the API key), `sub` (the participant identity), `nbf`, `exp`, `name`, `metadata` and
//! the `video` grant with camelCase fields. Claims Ward has no use for (`roomCreate`,
//! `roomAdmin`, `kind`, `attributes`, `sip`, …) are ignored whatever their type, so tokens from
//! newer SDKs keep working.
//!
//! Only HS256 is accepted: the algorithm comes from the attacker-controlled header, so anything
//! else (`none`, RS256 with the secret as a "public key") is refused before any other check.
//! The signature is checked with `hmac`'s constant-time comparison.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use ward_sfu::Grant;

/// How far clocks may disagree: a token is accepted this long before its `nbf` and after its
/// `exp`. LiveKit's verifiers allow the same minute (go-jose's default leeway, and
/// `DEFAULT_LEEWAY` in the Python SDK), so a token that works there works here.
pub const TOKEN_CLOCK_LEEWAY_S: u64 = 60;

/// Longest token accepted. SDK tokens are a few hundred bytes; the bound keeps a client from
/// making the server decode and hash megabytes of query string.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Latest `exp`/`nbf` accepted (the end of year 9999), so every time fits a `SystemTime`.
const MAX_NUMERIC_DATE_S: u64 = 253_402_300_799;

/// Some encoders pad base64url although JWTs must not; what is signed is the text as sent, so
/// accepting padding weakens nothing.
const BASE64URL_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An API key and its secret. The key travels in every token (`iss`); the secret never does.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    pub key: String,
    pub secret: String,
}

impl ApiKeys {
    /// A new random secret: 256 bits, base64url (43 characters — LiveKit wants at least 32).
    pub fn generate_secret() -> String {
        let bytes: [u8; 32] = rand::random();
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The secret must never reach a log line through `{:?}`.
impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys").field("key", &self.key).field("secret", &"<redacted>").finish()
    }
}

/// Why a token was refused. The messages are shown to the people joining (livekit-client
/// displays the `/rtc/validate` answer), so each says what is wrong and what to look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no access token was given (access_token query parameter or Authorization: Bearer header)")]
    Missing,
    #[error("the access token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    #[error("the access token is signed with {0}; only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("the access token was issued for API key `{0}`, which this server does not know")]
    UnknownKey(String),
    #[error("the access token's signature is invalid: it was not signed with this server's API secret")]
    BadSignature,
    #[error("the access token has no expiry time (exp)")]
    NoExpiry,
    #[error("the access token expired {} seconds ago", .ago_s)]
    Expired { ago_s: u64 },
    #[error("the access token is not valid for another {} seconds (nbf); check the clocks", .in_s)]
    NotYetValid { in_s: u64 },
    #[error("the access token does not allow joining a room (video.roomJoin is not true)")]
    NoJoinGrant,
    #[error("the access token names no room (video.room)")]
    NoRoom,
    #[error("the access token names no participant identity (sub)")]
    NoIdentity,
    #[error("the access token grants nothing for the room service (video.roomList, roomCreate or roomAdmin)")]
    NoServiceGrant,
}

/// The claims Ward reads. Every field is optional at this level so that absence and `null`
/// can be told apart from wrong types, and defaults applied as LiveKit applies them.
#[derive(Deserialize)]
struct Claims {
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    sub: Option<String>,
    /// LiveKit falls back to `jti` for the identity when `sub` is empty (older SDKs).
    jti: Option<String>,
    name: Option<String>,
    metadata: Option<String>,
    video: Option<VideoClaims>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoClaims {
    room_join: Option<bool>,
    room: Option<String>,
    can_publish: Option<bool>,
    can_subscribe: Option<bool>,
    can_publish_data: Option<bool>,
    can_publish_sources: Option<Vec<String>>,
    hidden: Option<bool>,
    can_update_own_metadata: Option<bool>,
    // Join tokens from other tools may carry these with odd types; they matter only for the
    // room service, where anything but `true` grants nothing.
    #[serde(default, deserialize_with = "only_true")]
    room_admin: Option<bool>,
    #[serde(default, deserialize_with = "only_true")]
    room_list: Option<bool>,
    #[serde(default, deserialize_with = "only_true")]
    room_create: Option<bool>,
}

fn only_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Some(serde_json::Value::deserialize(d)?.as_bool() == Some(true)))
}

/// What a token grants for LiveKit's room service API (`/twirp/livekit.RoomService/…`):
/// listing, creating and deleting rooms, and administering one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGrant {
    pub room_list: bool,
    pub room_create: bool,
    pub room_admin: bool,
    /// The room `room_admin` applies to.
    pub room: Option<String>,
}

/// JWT times are seconds since the epoch and may be fractional (RFC 7519 NumericDate).
struct NumericDate(f64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=MAX_NUMERIC_DATE_S as f64).contains(&v) {
            return Err(serde::de::Error::custom(format!("{v} is not a time between 1970 and 9999")));
        }
        Ok(Self(v))
    }
}

impl NumericDate {
    fn secs(&self) -> u64 {
        // In range by construction; whole seconds are all the checks need.
        self.0 as u64
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn malformed(what: impl fmt::Display) -> TokenError {
    TokenError::Malformed(what.to_string())
}

/// Verifies a join token against `keys` at time `now` and returns what it grants.
///
/// Checks, in this order: size, shape, algorithm (HS256 only), issuer (`keys.key`), signature,
/// expiry (required), not-before, the join grant with a room, the identity. Nothing from the
/// claims beyond the issuer is looked at before the signature holds.
pub fn verify(token: &str, keys: &ApiKeys, now: SystemTime) -> Result<Grant, TokenError> {
    let (claims, exp_s) = verified_claims(token, keys, now)?;
    let video = claims.video.ok_or(TokenError::NoJoinGrant)?;
    if video.room_join != Some(true) {
        return Err(TokenError::NoJoinGrant);
    }
    let room = video.room.filter(|r| !r.is_empty()).ok_or(TokenError::NoRoom)?;
    let identity = claims
        .sub
        .filter(|s| !s.is_empty())
        .or(claims.jti.filter(|s| !s.is_empty()))
        .ok_or(TokenError::NoIdentity)?;

    // LiveKit's defaults (protocol auth/grants.go): publishing and subscribing are allowed
    // unless the token says otherwise, data publishing follows publishing, and updating one's
    // own metadata is not allowed.
    let can_publish = video.can_publish.unwrap_or(true);
    Ok(Grant {
        identity,
        name: claims.name.unwrap_or_default(),
        metadata: claims.metadata.unwrap_or_default(),
        room,
        can_publish,
        can_subscribe: video.can_subscribe.unwrap_or(true),
        can_publish_data: video.can_publish_data.unwrap_or(can_publish),
        // LiveKit compares sources case-insensitively (`CAMERA` and `camera` alike).
        can_publish_sources: video
            .can_publish_sources
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        hidden: video.hidden.unwrap_or(false),
        can_update_own_metadata: video.can_update_own_metadata.unwrap_or(false),
        expires_at: UNIX_EPOCH + Duration::from_secs(exp_s),
    })
}

/// Verifies a token for the room service API: the same checks as [`verify`] up to the
/// grants, which here are the administrative ones.
pub fn verify_service(token: &str, keys: &ApiKeys, now: SystemTime) -> Result<ServiceGrant, TokenError> {
    let (claims, _) = verified_claims(token, keys, now)?;
    let video = claims.video.ok_or(TokenError::NoServiceGrant)?;
    Ok(ServiceGrant {
        room_list: video.room_list.unwrap_or(false),
        room_create: video.room_create.unwrap_or(false),
        room_admin: video.room_admin.unwrap_or(false),
        room: video.room.filter(|r| !r.is_empty()),
    })
}

/// The checks every token passes: size, shape, algorithm, issuer, signature, expiry and
/// not-before. Returns the claims and the expiry (seconds since the epoch).
fn verified_claims(token: &str, keys: &ApiKeys, now: SystemTime) -> Result<(Claims, u64), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        BASE64URL_ANY_PADDING.decode(part).map_err(|e| malformed(format!("{what} is not base64url: {e}")))
    };

    let header: serde_json::Value = serde_json::from_slice(&decode(header_b64, "the header")?)
        .map_err(|e| malformed(format!("the header is not JSON: {e}")))?;
    match header.get("alg") {
        Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
        Some(serde_json::Value::String(alg)) => return Err(TokenError::UnsupportedAlgorithm(alg.clone())),
        _ => return Err(malformed("the header names no algorithm (alg)")),
    }
    // RFC 7515 4.1.11: a verifier must refuse extensions it is told are critical.
    if header.get("crit").is_some() {
        return Err(malformed("critical header extensions (crit) are not supported"));
    }

    let payload: serde_json::Value = serde_json::from_slice(&decode(payload_b64, "the payload")?)
        .map_err(|e| malformed(format!("the payload is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(malformed("the payload is not a JSON object"));
    }
    match payload.get("iss") {
        Some(serde_json::Value::String(iss)) if iss == &keys.key => {}
        Some(serde_json::Value::String(iss)) if !iss.is_empty() => {
            return Err(TokenError::UnknownKey(iss.clone()));
        }
        _ => return Err(malformed("the token names no API key (iss)")),
    }

    let signature = decode(signature_b64, "the signature")?;
    let mut mac = signer(keys);
    mac.update(header_b64.as_bytes());
    mac.update(b".");
    mac.update(payload_b64.as_bytes());
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

    let claims: Claims = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        malformed(format!("claim `{path}`: {}", e.into_inner()))
    })?;

    let now_s = unix_secs(now);
    let exp_s = claims.exp.as_ref().ok_or(TokenError::NoExpiry)?.secs();
    if now_s >= exp_s.saturating_add(TOKEN_CLOCK_LEEWAY_S) {
        return Err(TokenError::Expired { ago_s: now_s - exp_s });
    }
    if let Some(nbf) = &claims.nbf {
        let nbf_s = nbf.secs();
        if nbf_s > now_s.saturating_add(TOKEN_CLOCK_LEEWAY_S) {
            return Err(TokenError::NotYetValid { in_s: nbf_s - now_s });
        }
    }

    Ok((claims, exp_s))
}

fn signer(keys: &ApiKeys) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this never fails.
    Hmac::<Sha256>::new_from_slice(keys.secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// What a token minted by Ward grants: one room, with LiveKit's permission flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub identity: String,
    pub name: String,
    pub metadata: String,
    pub room: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// Empty: every source.
    pub can_publish_sources: Vec<String>,
    pub hidden: bool,
    pub can_update_own_metadata: bool,
    pub ttl: Duration,
}

impl MintRequest {
    /// A token for `identity` in `room` that may publish, subscribe and send data, as LiveKit's
    /// SDKs grant by default.
    pub fn new(identity: impl Into<String>, room: impl Into<String>, ttl: Duration) -> Self {
        Self {
            identity: identity.into(),
            name: String::new(),
            metadata: String::new(),
            room: room.into(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            can_publish_sources: Vec::new(),
            hidden: false,
            can_update_own_metadata: false,
            ttl,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("a token needs a participant identity")]
    NoIdentity,
    #[error("a token needs a room")]
    NoRoom,
    #[error("a token needs a lifetime of at least one second")]
    NoLifetime,
    #[error("the token would be longer than {MAX_TOKEN_BYTES} bytes, which no server accepts")]
    TooLong,
}

/// Signs a join token valid from `now` for `request.ttl`, in the form LiveKit's server SDKs
/// write (so LiveKit's own tools and servers accept it too).
pub fn mint(keys: &ApiKeys, request: &MintRequest, now: SystemTime) -> Result<String, MintError> {
    if request.identity.is_empty() {
        return Err(MintError::NoIdentity);
    }
    if request.room.is_empty() {
        return Err(MintError::NoRoom);
    }
    if request.ttl.as_secs() == 0 {
        return Err(MintError::NoLifetime);
    }
    let nbf = unix_secs(now);
    let exp = nbf.saturating_add(request.ttl.as_secs()).min(MAX_NUMERIC_DATE_S);

    let mut video = serde_json::json!({
        "roomJoin": true,
        "room": request.room,
        "canPublish": request.can_publish,
        "canSubscribe": request.can_subscribe,
        "canPublishData": request.can_publish_data,
    });
    // Written only when set, as the SDKs do: an empty list would read as "all sources" anyway.
    if !request.can_publish_sources.is_empty() {
        video["canPublishSources"] = serde_json::json!(request.can_publish_sources);
    }
    if request.hidden {
        video["hidden"] = serde_json::Value::Bool(true);
    }
    if request.can_update_own_metadata {
        video["canUpdateOwnMetadata"] = serde_json::Value::Bool(true);
    }
    let mut claims = serde_json::json!({
        "iss": keys.key,
        "sub": request.identity,
        "nbf": nbf,
        "exp": exp,
        "video": video,
    });
    if !request.name.is_empty() {
        claims["name"] = serde_json::json!(request.name);
    }
    if !request.metadata.is_empty() {
        claims["metadata"] = serde_json::json!(request.metadata);
    }

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = signer(keys);
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let token = format!("{header}.{payload}.{signature}");
    if token.len() > MAX_TOKEN_BYTES {
        return Err(MintError::TooLong);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys { key: "ward".into(), secret: "test-secret-0123456789abcdefghijklmnopqrstuvwxyz".into() }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_800_000_000;

    /// Signs arbitrary header and claims, for the failure cases no minter would produce.
    fn sign(keys: &ApiKeys, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = signer(keys);
        mac.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn hs256() -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT"})
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "ward", "sub": "anna", "nbf": T0, "exp": T0 + 3600,
            "video": {"roomJoin": true, "room": "sprechstunde"}
        })
    }

    #[test]
    fn round_trip() {
        let mut request = MintRequest::new("anna", "sprechstunde", Duration::from_secs(3600));
        request.name = "Dr. Anna Weber".into();
        request.metadata = r#"{"role":"doctor"}"#.into();
        request.can_publish = false;
        request.can_publish_sources = vec!["microphone".into()];
        request.hidden = true;
        request.can_update_own_metadata = true;
        let token = mint(&keys(), &request, at(T0)).unwrap();
        let grant = verify(&token, &keys(), at(T0 + 10)).unwrap();
        assert_eq!(
            grant,
            Grant {
                identity: "anna".into(),
                name: "Dr. Anna Weber".into(),
                metadata: r#"{"role":"doctor"}"#.into(),
                room: "sprechstunde".into(),
                can_publish: false,
                can_subscribe: true,
                can_publish_data: true,
                can_publish_sources: vec!["microphone".into()],
                hidden: true,
                can_update_own_metadata: true,
                expires_at: at(T0 + 3600),
            }
        );
    }

    #[test]
    fn livekit_defaults_apply_to_absent_permissions() {
        let grant = verify(&sign(&keys(), &hs256(), &claims()), &keys(), at(T0)).unwrap();
        assert!(grant.can_publish && grant.can_subscribe && grant.can_publish_data);
        assert!(!grant.hidden && !grant.can_update_own_metadata);
        assert!(grant.can_publish_sources.is_empty());
        assert_eq!((grant.name.as_str(), grant.metadata.as_str()), ("", ""));

        let mut c = claims();
        c["video"]["canPublish"] = false.into();
        let grant = verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).unwrap();
        assert!(!grant.can_publish_data, "canPublishData follows canPublish when absent");
        c["video"]["canPublishData"] = true.into();
        c["video"]["canPublishSources"] = serde_json::json!(["CAMERA", "screen_share"]);
        let grant = verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).unwrap();
        assert!(grant.can_publish_data);
        assert_eq!(grant.can_publish_sources, ["camera", "screen_share"]);
    }

    #[test]
    fn unknown_claims_are_ignored_whatever_their_type() {
        let mut c = claims();
        c["kind"] = "agent".into();
        c["attributes"] = serde_json::json!({"a": "b"});
        c["sha256"] = "abc".into();
        c["roomConfig"] = serde_json::json!({"name": "x", "emptyTimeout": 10});
        c["sip"] = serde_json::json!({"admin": true});
        for (k, v) in [
            ("roomCreate", serde_json::json!(true)),
            ("roomAdmin", serde_json::json!(true)),
            ("roomList", serde_json::json!(1)),
            ("recorder", serde_json::json!("yes")),
            ("agent", serde_json::json!(true)),
            ("destinationRoom", serde_json::json!("elsewhere")),
        ] {
            c["video"][k] = v;
        }
        c["video"]["hidden"] = serde_json::Value::Null;
        assert!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).is_ok());
    }

    #[test]
    fn identity_falls_back_to_jti() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        c["jti"] = "bernd".into();
        assert_eq!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).unwrap().identity, "bernd");
    }

    #[test]
    fn time_checks_allow_the_leeway_and_no_more() {
        let token = sign(&keys(), &hs256(), &claims());
        let exp = T0 + 3600;
        assert!(verify(&token, &keys(), at(exp)).is_ok());
        assert!(verify(&token, &keys(), at(exp + TOKEN_CLOCK_LEEWAY_S - 1)).is_ok());
        assert_eq!(
            verify(&token, &keys(), at(exp + TOKEN_CLOCK_LEEWAY_S)),
            Err(TokenError::Expired { ago_s: TOKEN_CLOCK_LEEWAY_S })
        );
        assert!(verify(&token, &keys(), at(T0 - TOKEN_CLOCK_LEEWAY_S)).is_ok());
        assert_eq!(
            verify(&token, &keys(), at(T0 - TOKEN_CLOCK_LEEWAY_S - 1)),
            Err(TokenError::NotYetValid { in_s: TOKEN_CLOCK_LEEWAY_S + 1 })
        );

        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)), Err(TokenError::NoExpiry));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nbf");
        assert!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).is_ok(), "nbf is optional");
        c["exp"] = serde_json::json!(T0 as f64 + 0.5);
        assert!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)).is_ok(), "fractional times");
        c["exp"] = serde_json::json!(1e300);
        assert!(matches!(
            verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)),
            Err(TokenError::Malformed(m)) if m.contains("exp")
        ));
    }

    #[test]
    fn wrong_secret_key_or_algorithm() {
        let token = sign(&keys(), &hs256(), &claims());
        let other_secret = ApiKeys { secret: "another-secret-0123456789abcdefghijklmnop".into(), ..keys() };
        assert_eq!(verify(&token, &other_secret, at(T0)), Err(TokenError::BadSignature));
        let other_key = ApiKeys { key: "other".into(), ..keys() };
        assert_eq!(verify(&token, &other_key, at(T0)), Err(TokenError::UnknownKey("ward".into())));

        // A tampered payload under the original signature.
        let mut c = claims();
        c["video"]["room"] = "elsewhere".into();
        let forged = sign(&keys(), &hs256(), &c);
        let (head, _) = forged.rsplit_once('.').unwrap();
        let (_, sig) = token.rsplit_once('.').unwrap();
        assert_eq!(verify(&format!("{head}.{sig}"), &keys(), at(T0)), Err(TokenError::BadSignature));

        for alg in ["none", "HS512", "RS256", "hs256"] {
            let header = serde_json::json!({"alg": alg, "typ": "JWT"});
            let token = sign(&keys(), &header, &claims());
            assert_eq!(verify(&token, &keys(), at(T0)), Err(TokenError::UnsupportedAlgorithm(alg.into())));
        }
        // `alg: none` with an empty signature, the classic forgery.
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert_eq!(
            verify(&format!("{h}.{p}."), &keys(), at(T0)),
            Err(TokenError::UnsupportedAlgorithm("none".into()))
        );
        let header = serde_json::json!({"alg": "HS256", "crit": ["exp"]});
        assert!(matches!(
            verify(&sign(&keys(), &header, &claims()), &keys(), at(T0)),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn join_grant_room_and_identity_are_required() {
        let check = |edit: &dyn Fn(&mut serde_json::Value), want: TokenError| {
            let mut c = claims();
            edit(&mut c);
            assert_eq!(verify(&sign(&keys(), &hs256(), &c), &keys(), at(T0)), Err(want));
        };
        check(&|c| c["video"]["roomJoin"] = false.into(), TokenError::NoJoinGrant);
        check(&|c| drop(c["video"].as_object_mut().unwrap().remove("roomJoin")), TokenError::NoJoinGrant);
        check(&|c| drop(c.as_object_mut().unwrap().remove("video")), TokenError::NoJoinGrant);
        check(&|c| c["video"]["room"] = "".into(), TokenError::NoRoom);
        check(&|c| drop(c["video"].as_object_mut().unwrap().remove("room")), TokenError::NoRoom);
        check(&|c| c["sub"] = "".into(), TokenError::NoIdentity);
        check(&|c| drop(c.as_object_mut().unwrap().remove("sub")), TokenError::NoIdentity);
    }

    #[test]
    fn malformed_tokens() {
        let k = keys();
        assert_eq!(verify("", &k, at(T0)), Err(TokenError::Missing));
        assert_eq!(verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &k, at(T0)), Err(TokenError::TooLong));
        for bad in ["abc", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.", "bm90IGpzb24.e30.", "e30.e30.x"] {
            assert!(matches!(verify(bad, &k, at(T0)), Err(TokenError::Malformed(_))), "{bad}");
        }
        let no_iss = serde_json::json!({"sub": "anna", "exp": T0 + 10});
        assert!(matches!(verify(&sign(&k, &hs256(), &no_iss), &k, at(T0)), Err(TokenError::Malformed(_))));
        let array = URL_SAFE_NO_PAD.encode("[]");
        let h = URL_SAFE_NO_PAD.encode(hs256().to_string());
        assert!(matches!(verify(&format!("{h}.{array}.x"), &k, at(T0)), Err(TokenError::Malformed(_))));
        let mut c = claims();
        c["video"]["canPublish"] = "yes".into();
        match verify(&sign(&k, &hs256(), &c), &k, at(T0)) {
            Err(TokenError::Malformed(m)) => assert!(m.contains("video.canPublish"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mint_refuses_what_cannot_join() {
        let k = keys();
        let ttl = Duration::from_secs(60);
        assert_eq!(mint(&k, &MintRequest::new("", "r", ttl), at(T0)), Err(MintError::NoIdentity));
        assert_eq!(mint(&k, &MintRequest::new("i", "", ttl), at(T0)), Err(MintError::NoRoom));
        assert_eq!(
            mint(&k, &MintRequest::new("i", "r", Duration::from_millis(999)), at(T0)),
            Err(MintError::NoLifetime)
        );
        let mut long = MintRequest::new("i", "r", ttl);
        long.metadata = "x".repeat(MAX_TOKEN_BYTES);
        assert_eq!(mint(&k, &long, at(T0)), Err(MintError::TooLong));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", keys());
        assert!(shown.contains("ward") && !shown.contains("test-secret"), "{shown}");
        let secret = ApiKeys::generate_secret();
        assert_eq!(secret.len(), 43);
        assert_ne!(secret, ApiKeys::generate_secret());
    }

    /// Made once with the Python `livekit-api` 1.2.2 package (tests/requirements.txt):
    ///
    /// ```python
    /// from datetime import timedelta
    /// from livekit import api
    /// (api.AccessToken("fixture-key", "fixture-secret-0123456789abcdefghijklmnop")
    ///  .with_identity("anna").with_name("Dr. Anna Weber")
    ///  .with_metadata('{"role":"doctor"}').with_kind("standard")
    ///  .with_attributes({"ward.practice": "weber"})
    ///  .with_ttl(timedelta(days=365 * 100))
    ///  .with_grants(api.VideoGrants(room_join=True, room="sprechstunde",
    ///                               can_publish_sources=["camera", "microphone"],
    ///                               can_update_own_metadata=True))
    ///  .to_jwt())
    /// ```
    ///
    /// Its `nbf` is 1795930213 (late 2026) and its `exp` a century later, so it verifies at the
    /// real current time for as long as this test matters.
    const PYTHON_SDK_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYW1lIjoiRHIuIEFubmEgV2ViZXIiLCJraW5kIjoic3RhbmRhcmQiLCJtZXRhZGF0YSI6IntcInJvbGVcIjpcImRvY3RvclwifSIsInZpZGVvIjp7InJvb21Kb2luIjp0cnVlLCJyb29tIjoic3ByZWNoc3R1bmRlIiwiY2FuUHVibGlzaCI6dHJ1ZSwiY2FuU3Vic2NyaWJlIjp0cnVlLCJjYW5QdWJsaXNoRGF0YSI6dHJ1ZSwiY2FuUHVibGlzaFNvdXJjZXMiOlsiY2FtZXJhIiwibWljcm9waG9uZSJdLCJjYW5VcGRhdGVPd25NZXRhZGF0YSI6dHJ1ZX0sImF0dHJpYnV0ZXMiOnsid2FyZC5wcmFjdGljZSI6IndlYmVyIn0sInN1YiI6ImFubmEiLCJpc3MiOiJmaXh0dXJlLWtleSIsIm5iZiI6MTc5NTkzMDIxMywiZXhwIjo0OTQ5NTMwMjEzfQ.PXEAYcW-I9XvsRfp3QbVE4n6nh5vtESQr48nFSVmY7s";

    #[test]
    fn a_token_from_livekits_python_sdk_verifies() {
        let keys =
            ApiKeys { key: "fixture-key".into(), secret: "fixture-secret-0123456789abcdefghijklmnop".into() };
        let nbf = 1_795_930_213;
        let grant = verify(PYTHON_SDK_TOKEN, &keys, at(nbf + 1)).unwrap();
        assert_eq!(grant.identity, "anna");
        assert_eq!(grant.name, "Dr. Anna Weber");
        assert_eq!(grant.metadata, r#"{"role":"doctor"}"#);
        assert_eq!(grant.room, "sprechstunde");
        assert!(grant.can_publish && grant.can_subscribe && grant.can_publish_data);
        assert_eq!(grant.can_publish_sources, ["camera", "microphone"]);
        assert!(grant.can_update_own_metadata && !grant.hidden);
        assert_eq!(grant.expires_at, at(4_949_530_213));
        if SystemTime::now() >= at(nbf) {
            assert!(verify(PYTHON_SDK_TOKEN, &keys, SystemTime::now()).is_ok());
        }
        let wrong = ApiKeys { secret: "fixture-secret-0123456789abcdefghijklmnoq".into(), ..keys };
        assert_eq!(verify(PYTHON_SDK_TOKEN, &wrong, at(nbf + 1)), Err(TokenError::BadSignature));
    }
}
