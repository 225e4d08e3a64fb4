//! A minimal Matrix client for benchmarking: only the standard client-server API, so the same
//! program measures any homeserver.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

#[derive(Clone, Debug)]
pub struct User {
    pub token: String,
}

pub type Result<T> = std::result::Result<T, String>;

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl Client {
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| err("http client", e))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| err(path, e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| err(path, e))?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Like `call`, but retries on 429 as a well-behaved client does, and fails on other errors.
    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value> {
        for _ in 0..50 {
            let (status, value) = self.call(method.clone(), path, token, body).await?;
            match status {
                200 => return Ok(value),
                429 => {
                    let wait = value.get("retry_after_ms").and_then(Value::as_u64).unwrap_or(500);
                    tokio::time::sleep(Duration::from_millis(wait.min(5_000))).await;
                }
                _ => return Err(format!("{path}: HTTP {status}: {value}")),
            }
        }
        Err(format!("{path}: still rate-limited after 50 tries"))
    }

    /// Registers with `m.login.dummy` (open registration) or a registration token.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        registration_token: Option<&str>,
    ) -> Result<User> {
        let path = "/_matrix/client/v3/register";
        let mut body = json!({"username": username, "password": password, "inhibit_login": false});
        let (status, first) = self.call(reqwest::Method::POST, path, None, Some(&body)).await?;
        if status == 200 {
            return user(&first);
        }
        if status != 401 {
            return Err(format!("register {username}: HTTP {status}: {first}"));
        }
        let session = first.get("session").cloned().unwrap_or(Value::Null);
        if let Some(t) = registration_token {
            body["auth"] = json!({"type": "m.login.registration_token", "token": t, "session": session});
            let (status, v) = self.call(reqwest::Method::POST, path, None, Some(&body)).await?;
            if status == 200 {
                return user(&v);
            }
        }
        body["auth"] = json!({"type": "m.login.dummy", "session": session});
        let v = self.ok(reqwest::Method::POST, path, None, Some(&body)).await?;
        user(&v)
    }

    pub async fn create_room(&self, u: &User, body: Value) -> Result<String> {
        let v = self
            .ok(reqwest::Method::POST, "/_matrix/client/v3/createRoom", Some(&u.token), Some(&body))
            .await?;
        v.get("room_id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("createRoom: {v}"))
    }

    pub async fn join(&self, u: &User, room: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/join", enc(room));
        self.ok(reqwest::Method::POST, &path, Some(&u.token), Some(&json!({}))).await.map(|_| ())
    }

    /// Sends a text message; `Ok(false)` if the server refused it (counted, not fatal).
    pub async fn send(&self, u: &User, room: &str, txn: &str, body: &str) -> Result<bool> {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{}", enc(room), enc(txn));
        let content = json!({"msgtype": "m.text", "body": body});
        let (status, _) = self.call(reqwest::Method::PUT, &path, Some(&u.token), Some(&content)).await?;
        Ok(status == 200)
    }

    /// `/sync`; returns the body and its size in bytes.
    pub async fn sync(
        &self,
        u: &User,
        since: Option<&str>,
        timeout_ms: u64,
        filter: Option<&str>,
    ) -> Result<(Value, usize)> {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(s) = since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        if let Some(f) = filter {
            path.push_str(&format!("&filter={}", enc(f)));
        }
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&u.token)
            .send()
            .await
            .map_err(|e| err("sync", e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| err("sync", e))?;
        if status != 200 {
            return Err(format!("sync: HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| err("sync body", e))?;
        Ok((v, bytes.len()))
    }
}

impl Client {
    /// One simplified sliding sync request (MSC4186); returns the body and its size in bytes.
    pub async fn sliding_sync(
        &self,
        u: &User,
        pos: Option<&str>,
        timeout_ms: u64,
        body: &Value,
    ) -> Result<(Value, usize)> {
        let mut path =
            format!("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout={timeout_ms}");
        if let Some(p) = pos {
            path.push_str(&format!("&pos={}", enc(p)));
        }
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&u.token)
            .json(body)
            .send()
            .await
            .map_err(|e| err("sliding sync", e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| err("sliding sync", e))?;
        if status != 200 {
            return Err(format!("sliding sync: HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| err("sliding sync body", e))?;
        Ok((v, bytes.len()))
    }
}

fn user(v: &Value) -> Result<User> {
    let token = v.get("access_token").and_then(Value::as_str).ok_or_else(|| format!("register: {v}"))?;
    Ok(User { token: token.to_owned() })
}

/// Percent-encodes a path segment.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
