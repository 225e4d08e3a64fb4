//! Key distribution for end-to-end encryption: device keys, one-time and fallback keys,
//! cross-signing, device-list tracking and to-device messages.
//!
//! Ward never holds a private key. It stores what clients sign, checks the signatures it can
//! check (a device's self-signature, cross-signing keys signed by the master key, signatures
//! uploaded later), and shows keys only to people who share a room with their owner, so the
//! key directory cannot be used to enumerate users.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ruma::CanonicalJsonObject;
use serde_json::{Map, Value, json};
use ward_store::{CrossSigningKind, KeyCounts, KeySignature, KeyUpload, ToDeviceOutcome, ToDeviceRecipient};

use crate::uia::UiaAuth;
use crate::{Authed, Error, Result, Services};

/// Limits on key distribution.
pub mod e2ee_limits {
    /// One-time (and fallback) keys in one upload.
    pub const ONE_TIME_KEYS_PER_UPLOAD_MAX: usize = 200;
    /// Unclaimed one-time keys a device may hold; clients keep about 50.
    pub const ONE_TIME_KEYS_PER_DEVICE_MAX: u64 = 1000;
    /// Users in one `/keys/query`, and devices in one `/keys/claim`.
    pub const KEYS_QUERY_USERS_MAX: usize = 10_000;
    pub const KEYS_CLAIM_DEVICES_MAX: usize = 10_000;
    /// The JSON of one key object (device keys, a cross-signing key, a one-time key).
    pub const KEY_JSON_MAX_BYTES: usize = 16 * 1024;
    /// One to-device message's content.
    pub const TO_DEVICE_MESSAGE_MAX_BYTES: usize = 64 * 1024;
    /// Recipient devices (or `*` entries) in one `/sendToDevice`.
    pub const TO_DEVICE_RECIPIENTS_MAX: usize = 10_000;
    /// To-device messages handed to a device in one sync; the rest follow in the next.
    pub const TO_DEVICE_PER_SYNC_MAX: usize = 100;
    /// Signed objects in one `/keys/signatures/upload`.
    pub const SIGNATURES_UPLOAD_MAX: usize = 1000;
}
use e2ee_limits::*;

/// What this process knows about key and to-device activity, so that a sync with nothing new
/// for its device asks the database nothing. Everything before start-up counts as having
/// happened at the start-up position, so the first sync after a restart asks once.
pub(crate) struct Hints {
    started_at: u64,
    to_device: Mutex<ToDeviceHints>,
    /// (user, device) → current key counts; dropped on upload and claim.
    counts: Mutex<HashMap<(String, String), KeyCounts>>,
    /// Moves on every upload and claim, so a count read before one is not cached after it.
    counts_generation: AtomicU64,
}

#[derive(Default)]
struct ToDeviceHints {
    /// user → newest to-device position queued for any of the user's devices.
    sent: HashMap<String, u64>,
    /// user → sends being written right now. Counted before the write starts and released
    /// after `sent` has the position, so no sync whose snapshot includes a message can miss it.
    in_flight: HashMap<String, u32>,
    /// (user, device) → position up to which the device's queue is known to be empty.
    drained: HashMap<(String, String), u64>,
}

/// Entries per hint map; a full map is cleared (the next syncs ask the database again).
const HINT_ENTRIES_MAX: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain caches: a panic while holding one cannot leave it in a state that matters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hints {
    pub(crate) fn new(started_at: u64) -> Self {
        Self {
            started_at,
            to_device: Mutex::new(ToDeviceHints::default()),
            counts: Mutex::new(HashMap::new()),
            counts_generation: AtomicU64::new(0),
        }
    }

    /// Call before writing a send to these users; [`Self::to_device_sent`] after.
    fn to_device_sending(&self, users: &BTreeSet<String>) {
        let mut h = lock(&self.to_device);
        for user in users {
            *h.in_flight.entry(user.clone()).or_default() += 1;
        }
    }

    /// The send is written (`pos` is `None` if it failed or was a duplicate).
    fn to_device_sent(&self, users: &BTreeSet<String>, pos: Option<u64>) {
        let mut h = lock(&self.to_device);
        if h.sent.len() + users.len() > HINT_ENTRIES_MAX {
            // Forgetting what was sent makes `drained` marks unsafe: forget them too.
            h.sent.clear();
            h.drained.clear();
        }
        for user in users {
            if let Some(pos) = pos {
                let newest = h.sent.get(user).copied().unwrap_or(0).max(pos);
                h.sent.insert(user.clone(), newest);
            }
            if let Some(n) = h.in_flight.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    h.in_flight.remove(user);
                }
            }
        }
    }

    /// Whether the device may have to-device messages queued (or acknowledged ones to delete).
    fn to_device_pending(&self, user: &str, device: &str) -> bool {
        let h = lock(&self.to_device);
        if h.in_flight.contains_key(user) {
            return true;
        }
        let sent = h.sent.get(user).copied().unwrap_or(self.started_at);
        h.drained.get(&(user.to_owned(), device.to_owned())).is_none_or(|d| sent > *d)
    }

    fn to_device_drained(&self, user: &str, device: &str, up_to: u64) {
        let mut h = lock(&self.to_device);
        if h.drained.len() >= HINT_ENTRIES_MAX {
            h.drained.clear();
        }
        h.drained.insert((user.to_owned(), device.to_owned()), up_to);
    }

    fn counts(&self, user: &str, device: &str) -> Option<KeyCounts> {
        lock(&self.counts).get(&(user.to_owned(), device.to_owned())).cloned()
    }

    fn counts_generation(&self) -> u64 {
        self.counts_generation.load(Ordering::SeqCst)
    }

    /// Caches counts read at `generation`, unless an upload or claim came since.
    fn set_counts(&self, user: &str, device: &str, counts: KeyCounts, generation: u64) {
        let mut c = lock(&self.counts);
        if self.counts_generation() != generation {
            return;
        }
        if c.len() >= HINT_ENTRIES_MAX {
            c.clear();
        }
        c.insert((user.to_owned(), device.to_owned()), counts);
    }

    fn forget_counts(&self, user: &str, device: &str) {
        let mut c = lock(&self.counts);
        self.counts_generation.fetch_add(1, Ordering::SeqCst);
        c.remove(&(user.to_owned(), device.to_owned()));
    }
}

/// The one-time key algorithm clients count on seeing, even at zero.
const SIGNED_CURVE25519: &str = "signed_curve25519";

#[derive(Debug, Clone, Default)]
pub struct KeysUploadInput {
    pub device_keys: Option<Value>,
    pub one_time_keys: BTreeMap<String, Value>,
    pub fallback_keys: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct KeysQueryOutput {
    pub device_keys: BTreeMap<String, BTreeMap<String, Value>>,
    pub master_keys: BTreeMap<String, Value>,
    pub self_signing_keys: BTreeMap<String, Value>,
    pub user_signing_keys: BTreeMap<String, Value>,
    /// Per server name: why its users could not be asked.
    pub failures: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct SigningKeysInput {
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
    pub user_signing_key: Option<Value>,
}

/// Users whose devices changed, and users the syncing user no longer shares a room with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceListChanges {
    pub changed: BTreeSet<String>,
    pub left: BTreeSet<String>,
}

impl DeviceListChanges {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

fn canonical(v: &Value, what: &str) -> Result<CanonicalJsonObject> {
    match ruma::canonical_json::to_canonical_value(v) {
        Ok(ruma::CanonicalJsonValue::Object(o)) => Ok(o),
        Ok(_) => Err(Error::BadJson(format!("{what} must be a JSON object"))),
        Err(e) => Err(Error::BadJson(format!("{what} is not canonical JSON: {e}"))),
    }
}

/// The bytes a signature covers: canonical JSON without `signatures` and `unsigned`.
fn signed_bytes(v: &Value, what: &str) -> Result<String> {
    ruma::signatures::to_canonical_json_string_for_signing(&canonical(v, what)?)
        .map_err(|e| Error::BadJson(format!("{what}: {e}")))
}

/// Checks the signature `signer`/`key_id` on `v` with the base64 public `ed25519` key.
fn verify(v: &Value, signer: &str, key_id: &str, public_key: &str, what: &str) -> Result<()> {
    let bad = |why: &str| Error::InvalidSignature(format!("{what}: {why}"));
    let sig = v
        .pointer(&format!("/signatures/{}/{}", pointer_escape(signer), pointer_escape(key_id)))
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&format!("no signature by {signer} with {key_id}")))?;
    verify_signature(v, sig, public_key, what)
}

fn verify_signature(v: &Value, sig: &str, public_key: &str, what: &str) -> Result<()> {
    let bad = |why: &str| Error::InvalidSignature(format!("{what}: {why}"));
    let key = decode_base64(public_key).ok_or_else(|| bad("the public key is not base64"))?;
    let sig = decode_base64(sig).ok_or_else(|| bad("the signature is not base64"))?;
    let bytes = signed_bytes(v, what)?;
    ruma::signatures::verify_canonical_json_bytes(
        &ruma::SigningKeyAlgorithm::Ed25519,
        &key,
        &sig,
        bytes.as_bytes(),
    )
    .map_err(|e| bad(&format!("the signature does not verify ({e})")))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = s.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(s).ok()
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn text(v: &Value, what: &str) -> Result<String> {
    let s = serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))?;
    if s.len() > KEY_JSON_MAX_BYTES {
        return Err(Error::TooLarge(format!("{what} is larger than {KEY_JSON_MAX_BYTES} bytes")));
    }
    Ok(s)
}

/// `algorithm:key_id` with both parts non-empty.
fn check_key_id(id: &str, what: &str) -> Result<()> {
    match id.split_once(':') {
        Some((a, k)) if !a.is_empty() && !k.is_empty() && id.len() <= 255 => Ok(()),
        _ => Err(Error::InvalidParam(format!("{what} `{id}` is not of the form `algorithm:key_id`"))),
    }
}

/// The ed25519 key of a device-keys object, checked against its owner and self-signature.
fn check_device_keys(v: &Value, user_id: &str, device_id: &str) -> Result<String> {
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    if !v.is_object() {
        return Err(Error::BadJson("device_keys must be an object".into()));
    }
    if field("user_id") != Some(user_id) || field("device_id") != Some(device_id) {
        return Err(Error::InvalidParam(format!(
            "device_keys must be for the uploading device ({user_id}, {device_id})"
        )));
    }
    if !v.get("algorithms").is_some_and(Value::is_array) {
        return Err(Error::MissingParam("device_keys.algorithms must be a list".into()));
    }
    let keys = v.get("keys").and_then(Value::as_object).ok_or_else(|| {
        Error::MissingParam("device_keys.keys must be an object of `algorithm:device_id` keys".into())
    })?;
    if keys.values().any(|k| !k.is_string()) {
        return Err(Error::BadJson("device_keys.keys values must be strings".into()));
    }
    let ed25519 = keys
        .get(&format!("ed25519:{device_id}"))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::MissingParam(format!("device_keys.keys lacks ed25519:{device_id}")))?;
    verify(v, user_id, &format!("ed25519:{device_id}"), ed25519, "device_keys")?;
    Ok(ed25519.to_owned())
}

/// The public key of a cross-signing key object, checked for owner and usage.
fn check_cross_signing_key(v: &Value, user_id: &str, kind: CrossSigningKind) -> Result<String> {
    let what = kind.as_str();
    if v.get("user_id").and_then(Value::as_str) != Some(user_id) {
        return Err(Error::InvalidParam(format!("the {what} key must belong to {user_id}")));
    }
    let usage_ok =
        v.get("usage").and_then(Value::as_array).is_some_and(|u| u.iter().any(|x| x.as_str() == Some(what)));
    if !usage_ok {
        return Err(Error::InvalidParam(format!("the {what} key must list `{what}` in its usage")));
    }
    let keys = v
        .get("keys")
        .and_then(Value::as_object)
        .filter(|k| k.len() == 1)
        .ok_or_else(|| Error::InvalidParam(format!("the {what} key must hold exactly one key")))?;
    let (id, key) = keys.iter().next().ok_or_else(|| Error::InvalidParam(format!("no {what} key")))?;
    let key = key.as_str().ok_or_else(|| Error::BadJson(format!("the {what} key must be a string")))?;
    if id != &format!("ed25519:{key}") {
        return Err(Error::InvalidParam(format!("the {what} key's ID must be `ed25519:<public key>`")));
    }
    Ok(key.to_owned())
}

/// The public key of a stored cross-signing key JSON.
fn public_key_of(json: &Value) -> Option<String> {
    json.get("keys")?.as_object()?.values().next()?.as_str().map(str::to_owned)
}

/// The per-server failure for users of other servers (no federation yet).
fn no_federation() -> Value {
    json!({"status": 503, "message": "federation is not enabled"})
}

fn failure(errcode: &str, error: impl Into<String>) -> Value {
    json!({"errcode": errcode, "error": error.into()})
}

impl Services {
    /// The server of a user ID that is not ours (`None` for local users).
    fn remote_server<'a>(&self, user_id: &'a str) -> Option<&'a str> {
        let server = user_id.rsplit_once(':').map_or("", |(_, s)| s);
        (server != self.settings.server_name).then_some(server)
    }

    /// The people whose keys `me` may see: itself and everyone who shares a room with it
    /// (joined or invited on both sides).
    async fn key_audience(&self, me: &str) -> Result<BTreeSet<String>> {
        let mut peers: BTreeSet<String> = self.store.room_peers(me).await?.into_iter().collect();
        peers.insert(me.to_owned());
        Ok(peers)
    }

    /// `POST /keys/upload`. Returns the device's one-time key counts.
    pub async fn upload_keys(
        &self,
        authed: &Authed,
        input: KeysUploadInput,
    ) -> Result<BTreeMap<String, u64>> {
        let (user_id, device_id) = (&authed.user_id, &authed.device_id);
        let mut upload = KeyUpload::default();
        if let Some(keys) = &input.device_keys {
            check_device_keys(keys, user_id, device_id)?;
            let existing = self.store.device_keys(std::slice::from_ref(user_id)).await?;
            if let Some(old) = existing.iter().find(|k| &k.device_id == device_id) {
                let old: Value = serde_json::from_str(&old.json).unwrap_or_default();
                if old.get("keys") != keys.get("keys") || old.get("algorithms") != keys.get("algorithms") {
                    return Err(Error::InvalidParam(
                        "this device already has different identity keys; log in as a new device to \
                         use new keys"
                            .into(),
                    ));
                }
            } else {
                upload.device_keys = Some(text(keys, "device_keys")?);
            }
        }
        if input.one_time_keys.len() + input.fallback_keys.len() > ONE_TIME_KEYS_PER_UPLOAD_MAX {
            return Err(Error::TooLarge(format!(
                "at most {ONE_TIME_KEYS_PER_UPLOAD_MAX} one-time and fallback keys per upload"
            )));
        }
        for (id, key) in &input.one_time_keys {
            check_key_id(id, "one-time key ID")?;
            upload.one_time_keys.push((id.clone(), text(key, "a one-time key")?));
        }
        let mut fallback_algorithms = BTreeSet::new();
        for (id, key) in &input.fallback_keys {
            check_key_id(id, "fallback key ID")?;
            let algorithm = id.split_once(':').map_or(id.as_str(), |(a, _)| a);
            if !fallback_algorithms.insert(algorithm.to_owned()) {
                return Err(Error::InvalidParam(format!("more than one fallback key for {algorithm}")));
            }
            upload.fallback_keys.push((id.clone(), text(key, "a fallback key")?));
        }
        if !upload.one_time_keys.is_empty() {
            let held: u64 = self.store.key_counts(user_id, device_id).await?.one_time_keys.values().sum();
            if held + upload.one_time_keys.len() as u64 > ONE_TIME_KEYS_PER_DEVICE_MAX {
                return Err(Error::TooLarge(format!(
                    "a device may hold at most {ONE_TIME_KEYS_PER_DEVICE_MAX} unclaimed one-time keys"
                )));
            }
        }
        let (counts, changed) =
            self.store.upload_keys(user_id, device_id, upload).await.map_err(|e| match e {
                ward_store::StoreError::Conflict(m) => Error::InvalidParam(m),
                other => other.into(),
            })?;
        self.hints.forget_counts(user_id, device_id);
        self.hints.set_counts(user_id, device_id, counts.clone(), self.hints.counts_generation());
        if let Some(pos) = changed {
            self.notifier.advance_stream(pos);
        }
        let mut out = counts.one_time_keys;
        out.entry(SIGNED_CURVE25519.into()).or_insert(0);
        Ok(out)
    }

    /// `POST /keys/query`. Users the requester shares no room with look like users without
    /// devices.
    pub async fn query_keys(
        &self,
        authed: &Authed,
        users: BTreeMap<String, Vec<String>>,
    ) -> Result<KeysQueryOutput> {
        if users.len() > KEYS_QUERY_USERS_MAX {
            return Err(Error::TooLarge(format!("at most {KEYS_QUERY_USERS_MAX} users per query")));
        }
        let me = &authed.user_id;
        let audience = self.key_audience(me).await?;
        let mut out = KeysQueryOutput::default();
        let mut visible = Vec::new();
        for (user, devices) in &users {
            if let Some(server) = self.remote_server(user) {
                out.failures.insert(server.to_owned(), no_federation());
                continue;
            }
            out.device_keys.insert(user.clone(), BTreeMap::new());
            if audience.contains(user) {
                visible.push((user.clone(), devices.iter().cloned().collect::<BTreeSet<_>>()));
            }
        }
        let ids: Vec<String> = visible.iter().map(|(u, _)| u.clone()).collect();
        let signatures = self.store.key_signatures(&ids).await?;
        // Signatures over a key, as `signer → key_id → signature`, that `me` may see: the
        // owner's own, and `me`'s.
        let sigs_for = |user: &str, key: &str| {
            let mut m: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for s in signatures.iter().filter(|s| s.target_user_id == user && s.target_key_id == key) {
                if s.signer_user_id == user || &s.signer_user_id == me {
                    m.entry(s.signer_user_id.clone())
                        .or_default()
                        .insert(s.signer_key_id.clone(), s.signature.clone());
                }
            }
            m
        };
        let merge = |v: &mut Value, extra: BTreeMap<String, BTreeMap<String, String>>| {
            if extra.is_empty() {
                return;
            }
            let Some(obj) = v.as_object_mut() else { return };
            let sigs = obj.entry("signatures").or_insert_with(|| Value::Object(Map::new()));
            let Some(sigs) = sigs.as_object_mut() else { return };
            for (signer, keys) in extra {
                let entry = sigs.entry(signer).or_insert_with(|| Value::Object(Map::new()));
                if let Some(entry) = entry.as_object_mut() {
                    for (k, s) in keys {
                        entry.insert(k, Value::String(s));
                    }
                }
            }
        };
        for keys in self.store.device_keys(&ids).await? {
            let wanted = visible.iter().find(|(u, _)| u == &keys.user_id).map(|(_, d)| d);
            if wanted.is_some_and(|d| !d.is_empty() && !d.contains(&keys.device_id)) {
                continue;
            }
            let Ok(mut v) = serde_json::from_str::<Value>(&keys.json) else { continue };
            merge(&mut v, sigs_for(&keys.user_id, &keys.device_id));
            if let Some(obj) = v.as_object_mut() {
                let mut unsigned = Map::new();
                if let Some(name) = keys.display_name {
                    unsigned.insert("device_display_name".into(), Value::String(name));
                }
                obj.insert("unsigned".into(), Value::Object(unsigned));
            }
            out.device_keys.entry(keys.user_id.clone()).or_default().insert(keys.device_id, v);
        }
        for (user, kind, json) in self.store.cross_signing_keys(&ids).await? {
            let Ok(mut v) = serde_json::from_str::<Value>(&json) else { continue };
            if let Some(public) = public_key_of(&v) {
                merge(&mut v, sigs_for(&user, &public));
            }
            match kind {
                CrossSigningKind::Master => {
                    out.master_keys.insert(user, v);
                }
                CrossSigningKind::SelfSigning => {
                    out.self_signing_keys.insert(user, v);
                }
                CrossSigningKind::UserSigning if &user == me => {
                    out.user_signing_keys.insert(user, v);
                }
                CrossSigningKind::UserSigning => {}
            }
        }
        Ok(out)
    }

    /// `POST /keys/claim`: one key per requested device; unknown devices are left out.
    pub async fn claim_keys(
        &self,
        authed: &Authed,
        wanted: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<(BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>, BTreeMap<String, Value>)> {
        let total: usize = wanted.values().map(BTreeMap::len).sum();
        if total > KEYS_CLAIM_DEVICES_MAX {
            return Err(Error::TooLarge(format!("at most {KEYS_CLAIM_DEVICES_MAX} devices per claim")));
        }
        let audience = self.key_audience(&authed.user_id).await?;
        let mut failures = BTreeMap::new();
        let mut requests = Vec::new();
        for (user, devices) in wanted {
            if let Some(server) = self.remote_server(&user) {
                failures.insert(server.to_owned(), no_federation());
                continue;
            }
            if !audience.contains(&user) {
                continue;
            }
            for (device, algorithm) in devices {
                requests.push((user.clone(), device, algorithm));
            }
        }
        let claimed = self.store.claim_keys(&requests).await;
        for (user, device, _) in &requests {
            self.hints.forget_counts(user, device);
        }
        let mut out: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>> = BTreeMap::new();
        for (user, device, key_id, json) in claimed? {
            let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
            out.entry(user).or_default().entry(device).or_default().insert(key_id, v);
        }
        Ok((out, failures))
    }

    /// `POST /keys/device_signing/upload`. The first upload needs no further authentication
    /// (a new account sets up cross-signing right after registering); replacing keys does.
    pub async fn upload_signing_keys(
        &self,
        authed: &Authed,
        input: SigningKeysInput,
        auth: Option<UiaAuth>,
    ) -> Result<()> {
        let me = &authed.user_id;
        let existing: BTreeMap<CrossSigningKind, Value> = self
            .store
            .cross_signing_keys(std::slice::from_ref(me))
            .await?
            .into_iter()
            .filter_map(|(_, kind, json)| Some((kind, serde_json::from_str(&json).ok()?)))
            .collect();
        let mut keys = Vec::new();
        let master_public = match &input.master_key {
            Some(v) => check_cross_signing_key(v, me, CrossSigningKind::Master)?,
            None => existing.get(&CrossSigningKind::Master).and_then(public_key_of).ok_or_else(|| {
                Error::MissingParam("a master key is needed before other cross-signing keys".into())
            })?,
        };
        for (kind, v) in [
            (CrossSigningKind::Master, &input.master_key),
            (CrossSigningKind::SelfSigning, &input.self_signing_key),
            (CrossSigningKind::UserSigning, &input.user_signing_key),
        ] {
            let Some(v) = v else { continue };
            if kind != CrossSigningKind::Master {
                check_cross_signing_key(v, me, kind)?;
                verify(v, me, &format!("ed25519:{master_public}"), &master_public, kind.as_str())?;
            }
            keys.push((kind, v));
        }
        if keys.is_empty() {
            return Ok(());
        }
        let unchanged = keys.iter().all(|(kind, v)| {
            existing.get(kind).is_some_and(|old| signed_bytes(old, "").ok() == signed_bytes(v, "").ok())
        });
        if unchanged {
            return Ok(());
        }
        let session = if existing.contains_key(&CrossSigningKind::Master) {
            Some(
                self.run_uia("device_signing_upload", Some(me), &[vec![crate::Stage::Password]], auth)
                    .await?,
            )
        } else {
            None
        };
        let stored: Vec<(CrossSigningKind, String)> =
            keys.iter().map(|(kind, v)| Ok((*kind, text(v, kind.as_str())?))).collect::<Result<_>>()?;
        let pos = self.store.set_cross_signing_keys(me, &stored).await?;
        self.notifier.advance_stream(pos);
        if let Some(session) = session {
            self.store.delete_uia_session(&session.id).await?;
        }
        Ok(())
    }

    /// `POST /keys/signatures/upload`: checks each new signature and stores the good ones.
    /// Returns failures per user and key.
    pub async fn upload_signatures(
        &self,
        authed: &Authed,
        signed: BTreeMap<String, BTreeMap<String, Value>>,
    ) -> Result<BTreeMap<String, BTreeMap<String, Value>>> {
        let me = &authed.user_id;
        let total: usize = signed.values().map(BTreeMap::len).sum();
        if total > SIGNATURES_UPLOAD_MAX {
            return Err(Error::TooLarge(format!(
                "at most {SIGNATURES_UPLOAD_MAX} signed objects per upload"
            )));
        }
        let mut users: Vec<String> = signed.keys().cloned().collect();
        if !users.contains(me) {
            users.push(me.clone());
        }
        let cross: BTreeMap<(String, CrossSigningKind), Value> = self
            .store
            .cross_signing_keys(&users)
            .await?
            .into_iter()
            .filter_map(|(u, kind, json)| Some(((u, kind), serde_json::from_str(&json).ok()?)))
            .collect();
        let my_devices: BTreeMap<String, Value> = self
            .store
            .device_keys(std::slice::from_ref(me))
            .await?
            .into_iter()
            .filter_map(|k| Some((k.device_id, serde_json::from_str(&k.json).ok()?)))
            .collect();
        let key_of = |user: &str, kind| cross.get(&(user.to_owned(), kind)).and_then(public_key_of);
        let audience = self.key_audience(me).await?;
        let mut failures: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut good = Vec::new();
        for (user, objects) in &signed {
            for (key_id, object) in objects {
                // The first problem with this object, reported in `failures`.
                let mut problem: Option<Value> = None;
                let mut fail = |code: &str, msg: String| {
                    problem.get_or_insert_with(|| failure(code, msg));
                };
                // What is being signed, as stored, and which of `me`'s keys may sign it.
                let (stored, signer_keys): (Option<&Value>, Vec<(String, String)>) = if user == me {
                    if let Some(device) = my_devices.get(key_id) {
                        let ssk = key_of(me, CrossSigningKind::SelfSigning);
                        (Some(device), ssk.map(|k| (format!("ed25519:{k}"), k)).into_iter().collect())
                    } else if key_of(me, CrossSigningKind::Master).as_deref() == Some(key_id.as_str()) {
                        let devices = my_devices
                            .iter()
                            .filter_map(|(d, v)| {
                                let k =
                                    v.pointer(&format!("/keys/ed25519:{}", pointer_escape(d)))?.as_str()?;
                                Some((format!("ed25519:{d}"), k.to_owned()))
                            })
                            .collect();
                        (cross.get(&(me.clone(), CrossSigningKind::Master)), devices)
                    } else {
                        (None, vec![])
                    }
                } else if audience.contains(user)
                    && key_of(user, CrossSigningKind::Master).as_deref() == Some(key_id.as_str())
                {
                    let usk = key_of(me, CrossSigningKind::UserSigning);
                    (
                        cross.get(&(user.clone(), CrossSigningKind::Master)),
                        usk.map(|k| (format!("ed25519:{k}"), k)).into_iter().collect(),
                    )
                } else {
                    (None, vec![])
                };
                let Some(stored) = stored else {
                    let msg = format!("no key {key_id} of {user} that you can sign");
                    failures
                        .entry(user.clone())
                        .or_default()
                        .insert(key_id.clone(), failure("M_NOT_FOUND", msg));
                    continue;
                };
                let same =
                    match (signed_bytes(stored, "the stored key"), signed_bytes(object, "the signed object"))
                    {
                        (Ok(a), Ok(b)) if a == b => Ok(()),
                        (_, Err(e)) => Err(failure("M_BAD_JSON", e.to_string())),
                        _ => Err(failure("M_INVALID_PARAM", "the signed object differs from the stored key")),
                    };
                if let Err(f) = same {
                    failures.entry(user.clone()).or_default().insert(key_id.clone(), f);
                    continue;
                }
                let mine = object
                    .pointer(&format!("/signatures/{}", pointer_escape(me)))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let already = stored
                    .pointer(&format!("/signatures/{}", pointer_escape(me)))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut added = 0;
                for (signer_key_id, sig) in &mine {
                    if already.get(signer_key_id) == Some(sig) {
                        continue; // the key's own self-signature, uploaded with it
                    }
                    let Some(sig) = sig.as_str() else {
                        fail("M_BAD_JSON", format!("the signature {signer_key_id} is not a string"));
                        continue;
                    };
                    let Some((_, public)) = signer_keys.iter().find(|(id, _)| id == signer_key_id) else {
                        fail(
                            "M_INVALID_SIGNATURE",
                            format!("{signer_key_id} is not a key that may sign this"),
                        );
                        continue;
                    };
                    match verify_signature(object, sig, public, key_id) {
                        Ok(()) => {
                            added += 1;
                            good.push(KeySignature {
                                target_user_id: user.clone(),
                                target_key_id: key_id.clone(),
                                signer_user_id: me.clone(),
                                signer_key_id: signer_key_id.clone(),
                                signature: sig.to_owned(),
                            });
                        }
                        Err(e) => fail("M_INVALID_SIGNATURE", e.to_string()),
                    }
                }
                if added == 0 {
                    fail("M_INVALID_SIGNATURE", format!("no new signature by {me} on {key_id}"));
                }
                if let Some(f) = problem {
                    failures.entry(user.clone()).or_default().insert(key_id.clone(), f);
                }
            }
        }
        if !good.is_empty() {
            let pos = self.store.add_key_signatures(&good).await?;
            self.notifier.advance_stream(pos);
        }
        Ok(failures)
    }

    /// Whose device lists changed between two stream positions, as `me` should hear of it:
    /// people sharing a room whose devices or keys changed, people who came to share a room
    /// (`changed`), and people who no longer share any (`left`).
    pub(crate) async fn device_list_changes(
        &self,
        me: &str,
        since: u64,
        until: u64,
    ) -> Result<DeviceListChanges> {
        // Always asked: `ward admin` deletes devices from another process.
        let mut candidates: BTreeSet<String> =
            self.store.device_list_changes(since, until).await?.into_iter().collect();
        let members_changed = self.notifier.members_changed_after(None, since);
        let mut maybe_left = BTreeSet::new();
        let memberships = if members_changed { self.store.memberships_of_user(me).await? } else { vec![] };
        for m in memberships {
            if m.membership != "join" && !(m.stream_pos > since && m.stream_pos <= until) {
                continue;
            }
            if !self.notifier.members_changed_after(Some(&m.room_id), since) {
                continue;
            }
            for c in self.store.member_changes(&m.room_id, since, until).await? {
                let joined = c.membership == "join" || c.membership == "invite";
                if c.user_id == me {
                    let members = self.store.room_members(&m.room_id).await?;
                    let members = members
                        .into_iter()
                        .filter(|x| x.membership == "join" || x.membership == "invite")
                        .map(|x| x.user_id);
                    if joined {
                        candidates.extend(members);
                    } else {
                        maybe_left.extend(members);
                    }
                } else if joined {
                    candidates.insert(c.user_id);
                } else {
                    maybe_left.insert(c.user_id);
                }
            }
        }
        if candidates.is_empty() && maybe_left.is_empty() {
            return Ok(DeviceListChanges::default());
        }
        let audience = self.key_audience(me).await?;
        let left: BTreeSet<String> =
            maybe_left.into_iter().filter(|u| u != me && !audience.contains(u)).collect();
        let changed = candidates.into_iter().filter(|u| audience.contains(u)).collect();
        Ok(DeviceListChanges { changed, left })
    }

    /// `GET /keys/changes`.
    pub async fn key_changes(&self, authed: &Authed, from: &str, to: &str) -> Result<DeviceListChanges> {
        let from = crate::rooms::parse_token(from)?;
        let to = crate::rooms::parse_token(to)?.min(self.notifier.positions().stream);
        if to <= from {
            return Ok(DeviceListChanges::default());
        }
        self.device_list_changes(&authed.user_id, from, to).await
    }

    /// `PUT /sendToDevice/{eventType}/{txnId}`. Messages to devices whose queue is full are
    /// dropped and logged; the sender cannot do anything about an abandoned device.
    pub async fn send_to_device(
        &self,
        authed: &Authed,
        kind: &str,
        txn_id: &str,
        messages: BTreeMap<String, BTreeMap<String, Value>>,
    ) -> Result<()> {
        if kind.is_empty() || kind.len() > crate::rooms::room_limits::EVENT_TYPE_MAX_BYTES {
            return Err(Error::InvalidParam("the event type must be 1 to 255 bytes".into()));
        }
        if txn_id.is_empty() || txn_id.len() > crate::rooms::room_limits::TXN_ID_MAX_BYTES {
            return Err(Error::InvalidParam("the transaction ID must be 1 to 255 bytes".into()));
        }
        let total: usize = messages.values().map(BTreeMap::len).sum();
        if total > TO_DEVICE_RECIPIENTS_MAX {
            return Err(Error::TooLarge(format!(
                "at most {TO_DEVICE_RECIPIENTS_MAX} recipients per request"
            )));
        }
        let mut recipients = Vec::new();
        for (user, devices) in messages {
            if ruma::UserId::parse(&user).is_err() {
                return Err(Error::InvalidParam(format!("`{user}` is not a user ID")));
            }
            for (device, content) in devices {
                if !content.is_object() {
                    return Err(Error::BadJson(format!("the message for {user}/{device} must be an object")));
                }
                let content = serde_json::to_string(&content).map_err(|e| Error::Internal(e.to_string()))?;
                if content.len() > TO_DEVICE_MESSAGE_MAX_BYTES {
                    return Err(Error::TooLarge(format!(
                        "a to-device message may be at most {TO_DEVICE_MESSAGE_MAX_BYTES} bytes"
                    )));
                }
                if self.remote_server(&user).is_some() {
                    // No federation yet: there is nowhere to deliver it.
                    tracing::debug!("dropping a to-device message for a remote user");
                    continue;
                }
                recipients.push(ToDeviceRecipient { user_id: user.clone(), device_id: device, content });
            }
        }
        let users: BTreeSet<String> = recipients.iter().map(|r| r.user_id.clone()).collect();
        self.hints.to_device_sending(&users);
        let outcome = self
            .store
            .send_to_device(
                (&authed.user_id, &authed.device_id),
                txn_id,
                kind,
                recipients,
                self.settings.to_device_queue_max,
            )
            .await;
        let queued_at = match &outcome {
            Ok(ToDeviceOutcome::Queued { stream_pos, .. }) => Some(*stream_pos),
            _ => None,
        };
        self.hints.to_device_sent(&users, queued_at);
        if let ToDeviceOutcome::Queued { stream_pos, dropped } = outcome? {
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    limit = self.settings.to_device_queue_max,
                    "to-device queues full; messages dropped"
                );
                metrics::counter!("ward_to_device_dropped_total").increment(dropped);
            }
            self.notifier.advance_stream(stream_pos);
        }
        Ok(())
    }

    /// Wakes syncs after a write that took a stream position inside the store (deleting a
    /// device changes its owner's device list there).
    pub(crate) async fn wake_from_store(&self) -> Result<()> {
        let pos = self.store.max_stream_pos().await?;
        self.notifier.advance_stream(pos);
        Ok(())
    }

    /// To-device messages for the device after `after` (at most `limit`), deleting the
    /// acknowledged ones (at or before `after`) when `acknowledge` is set.
    pub(crate) async fn to_device_for_sync(
        &self,
        authed: &Authed,
        after: u64,
        until: u64,
        acknowledge: bool,
    ) -> Result<Vec<ward_store::ToDeviceMessage>> {
        let (user, device) = (&authed.user_id, &authed.device_id);
        if !self.hints.to_device_pending(user, device) {
            return Ok(vec![]);
        }
        let (messages, acknowledged) =
            self.store.to_device_messages(user, device, after, until, TO_DEVICE_PER_SYNC_MAX).await?;
        if acknowledged && acknowledge {
            self.store.ack_to_device(user, device, after).await?;
        }
        if messages.is_empty() && (acknowledge || !acknowledged) {
            // Nothing queued at or before `until` any more.
            self.hints.to_device_drained(user, device, until);
        }
        Ok(messages)
    }

    /// The device's key counts, from memory when nothing changed them.
    pub(crate) async fn key_counts(&self, authed: &Authed) -> Result<KeyCounts> {
        let (user, device) = (&authed.user_id, &authed.device_id);
        if let Some(c) = self.hints.counts(user, device) {
            return Ok(c);
        }
        let generation = self.hints.counts_generation();
        let c = self.store.key_counts(user, device).await?;
        self.hints.set_counts(user, device, c.clone(), generation);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_being_written_keeps_its_recipients_pending() {
        let h = Hints::new(10);
        let users: BTreeSet<String> = ["@b:x".to_owned()].into();
        assert!(h.to_device_pending("@b:x", "D"), "unknown after start-up: ask once");
        h.to_device_drained("@b:x", "D", 10);
        assert!(!h.to_device_pending("@b:x", "D"));
        h.to_device_sending(&users);
        assert!(h.to_device_pending("@b:x", "D"), "in flight");
        // A sync that saw nothing yet must not hide the message being written.
        h.to_device_drained("@b:x", "D", 11);
        assert!(h.to_device_pending("@b:x", "D"), "still in flight");
        h.to_device_sent(&users, Some(12));
        assert!(h.to_device_pending("@b:x", "D"));
        h.to_device_drained("@b:x", "D", 12);
        assert!(!h.to_device_pending("@b:x", "D"));
    }

    #[test]
    fn counts_read_before_a_claim_are_not_cached_after_it() {
        let h = Hints::new(0);
        let generation = h.counts_generation();
        h.forget_counts("@a:x", "D");
        h.set_counts("@a:x", "D", KeyCounts::default(), generation);
        assert!(h.counts("@a:x", "D").is_none());
        h.set_counts("@a:x", "D", KeyCounts::default(), h.counts_generation());
        assert!(h.counts("@a:x", "D").is_some());
    }

    #[test]
    fn key_ids_need_both_parts() {
        assert!(check_key_id("signed_curve25519:AAAAAQ", "k").is_ok());
        for bad in ["nocolon", ":x", "x:", ""] {
            assert!(check_key_id(bad, "k").is_err(), "{bad}");
        }
    }

    #[test]
    fn device_keys_must_be_signed_by_their_device() {
        use base64::Engine;
        use ruma::signatures::Ed25519KeyPair;
        let doc = Ed25519KeyPair::generate();
        let pair = Ed25519KeyPair::from_der(&doc, "DEV".into()).unwrap();
        let public = base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        let mut keys = json!({
            "user_id": "@a:x", "device_id": "DEV",
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {"ed25519:DEV": public, "curve25519:DEV": "c"},
        });
        let mut obj = canonical(&keys, "k").unwrap();
        ruma::signatures::sign_json("@a:x", &pair, &mut obj).unwrap();
        keys = serde_json::to_value(&obj).unwrap();
        assert_eq!(check_device_keys(&keys, "@a:x", "DEV").unwrap(), public);
        assert!(matches!(check_device_keys(&keys, "@a:x", "OTHER"), Err(Error::InvalidParam(_))));
        let mut tampered = keys.clone();
        tampered["keys"]["curve25519:DEV"] = json!("d");
        assert!(matches!(check_device_keys(&tampered, "@a:x", "DEV"), Err(Error::InvalidSignature(_))));
    }
}
