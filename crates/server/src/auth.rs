//! Per-service API keys (`--api-keys FILE`). Each calling service has its own key, stored only
//! as its sha256, the models it may use, and its own request and token rates. Every route but
//! `/health` and `/ready` needs `Authorization: Bearer <key>` once keys are configured: no or
//! wrong key → 401, a model not allowed → 403, over a rate → 429 with `Retry-After`.
//!
//! ```toml
//! [[service]]
//! name = "radiology-reports"
//! key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! models = ["medgemma-4b-it"]      # or ["*"] for whatever is served
//! requests_per_minute = 120       # optional: no limit when left out
//! tokens_per_minute = 60000       # optional: prompt + generated tokens
//! admin = true                    # optional: /metrics shows every service's traffic to it
//! weight = 2                      # optional (1): its share of the queue and of turns
//! ```
//!
//! Sharing: each service is guaranteed a part of the engine's places (waiting and running
//! sequences) in proportion to its weight, and may use more only where that leaves every
//! other service its guaranteed part; an `n`-choice request takes `n` places. A request's
//! tokens (`n` × `max_tokens`) are reserved against `tokens_per_minute` when it is admitted
//! and settled when it ends, so one request cannot spend more than the rate.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    service: Vec<ServiceEntry>,
}

/// One entry of the key file. Unknown fields are refused, so a misspelt limit is an error
/// rather than no limit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: String,
    key_sha256: String,
    models: Vec<String>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
    #[serde(default)]
    admin: bool,
    weight: Option<u32>,
}

/// A calling service, as the key file describes it, with its rate limits' state.
pub struct Service {
    pub name: String,
    /// May see other services' traffic in `/metrics`.
    pub admin: bool,
    /// Its share of places and turns, relative to the other services'.
    pub weight: u32,
    /// Its position in the key file, for [`Keys::hold`].
    index: usize,
    key_hash: [u8; 32],
    models: Vec<String>,
    requests: Option<Mutex<Bucket>>,
    tokens: Option<Mutex<Bucket>>,
}

/// The services allowed to call this server.
pub struct Keys {
    services: Vec<Arc<Service>>,
    /// Engine places (sequences waiting or running) each service holds, by index.
    held: Arc<Mutex<Vec<usize>>>,
}

/// Places a request holds in the engine until it is dropped (see [`Keys::hold`]).
pub struct Held {
    held: Arc<Mutex<Vec<usize>>>,
    index: usize,
    n: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner())[self.index] -= self.n;
    }
}

/// Who made a request: `None` when the server runs without keys.
#[derive(Clone, Default)]
pub struct Caller(pub Option<Arc<Service>>);

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid key file {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Keys {
    pub fn load(path: &Path) -> Result<Keys, KeyFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: shown.clone(),
            source,
        })?;
        Keys::parse(&text).map_err(|message| KeyFileError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Keys, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if file.service.is_empty() {
            return Err("no [[service]] entries: nobody could call the server".into());
        }
        let mut services: Vec<Arc<Service>> = Vec::new();
        for entry in file.service {
            let name = entry.name;
            let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
                return Err(format!(
                    "service name {name:?} must be 1-64 letters, digits, '-', '_' or '.'"
                ));
            }
            if services.iter().any(|s| s.name == name) {
                return Err(format!("service {name:?} is listed twice"));
            }
            let key_hash = parse_hex32(&entry.key_sha256).ok_or_else(|| {
                format!(
                    "service {name:?}: key_sha256 must be 64 hex digits (the sha256 of the key)"
                )
            })?;
            if services.iter().any(|s| s.key_hash == key_hash) {
                return Err(format!(
                    "service {name:?} has the same key as another service"
                ));
            }
            if entry.models.is_empty() {
                return Err(format!(
                    "service {name:?}: 'models' is empty (use [\"*\"] for any)"
                ));
            }
            let bucket = |rate: Option<u32>, what: &str| match rate {
                Some(0) => Err(format!(
                    "service {name:?}: {what} must be at least 1 (leave it out for no limit)"
                )),
                Some(r) => Ok(Some(Mutex::new(Bucket::new(r)))),
                None => Ok(None),
            };
            if entry.weight == Some(0) {
                return Err(format!("service {name:?}: weight must be at least 1"));
            }
            services.push(Arc::new(Service {
                weight: entry.weight.unwrap_or(1),
                index: services.len(),
                requests: bucket(entry.requests_per_minute, "requests_per_minute")?,
                tokens: bucket(entry.tokens_per_minute, "tokens_per_minute")?,
                name,
                admin: entry.admin,
                key_hash,
                models: entry.models,
            }));
        }
        let held = Arc::new(Mutex::new(vec![0; services.len()]));
        Ok(Keys { services, held })
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// `n` places for `service` in an engine that holds `capacity`: within its guaranteed
    /// share (capacity × its weight / all weights), or beyond it only where every other
    /// service keeps room for its own share; otherwise 429.
    pub fn hold(&self, service: &Service, n: usize, capacity: usize) -> Result<Held, ApiError> {
        let total_weight: usize = self.services.iter().map(|s| s.weight as usize).sum();
        let share =
            |s: &Service| (capacity.saturating_mul(s.weight as usize) / total_weight).max(1);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held[service.index];
        let within_share = mine + n <= share(service);
        let others_kept: usize = self
            .services
            .iter()
            .filter(|s| s.index != service.index)
            .map(|s| share(s).saturating_sub(held[s.index]))
            .sum();
        let in_use: usize = held.iter().sum();
        if !within_share && in_use + n + others_kept > capacity {
            return Err(ApiError::rate_limited(
                "this service holds its share of the server's queue; retry later",
                Duration::from_secs(1),
            ));
        }
        held[service.index] += n;
        Ok(Held {
            held: self.held.clone(),
            index: service.index,
            n,
        })
    }

    /// The service whose key is `presented`. Every service's hash is compared in full,
    /// whichever matches, so the time taken says nothing about the keys.
    fn find(&self, presented: &str) -> Option<&Arc<Service>> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for service in &self.services {
            if constant_time_eq(&service.key_hash, &hash) {
                found = Some(service);
            }
        }
        found
    }

    /// The caller named by an `Authorization` header value, or 401.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Arc<Service>, ApiError> {
        // The scheme is case-insensitive (RFC 9110); the key is not.
        let key = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "this server needs an API key: send 'Authorization: Bearer <key>'",
                )
            })?;
        self.find(key)
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))
    }
}

impl Service {
    /// Whether this service may use the model served as `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }

    /// Count one request against the request rate; 429 when over it.
    pub fn admit_request(&self) -> Result<(), ApiError> {
        if let Some(bucket) = &self.requests {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.take(1.0, Instant::now()).map_err(|wait| {
                ApiError::rate_limited("this service is over its requests_per_minute", wait)
            })?;
        }
        Ok(())
    }

    /// Refuse new generation while the service's tokens are spent (429).
    pub fn check_tokens(&self) -> Result<(), ApiError> {
        if let Some(bucket) = &self.tokens {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.wait_for_credit(Instant::now()).map_err(|wait| {
                ApiError::rate_limited("this service is over its tokens_per_minute", wait)
            })?;
        }
        Ok(())
    }

    /// Reserve the most tokens a request may generate, or 429 when the balance does not hold
    /// them (and will never, when they are more than a minute's worth).
    pub fn reserve_tokens(&self, n: usize) -> Result<(), ApiError> {
        if let Some(bucket) = &self.tokens {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            if n as f64 > bucket.per_minute {
                return Err(ApiError::rate_limited(
                    "the request may generate more tokens than this service's tokens_per_minute; \
                     ask for fewer (max_tokens, n)",
                    Duration::from_secs(60),
                ));
            }
            bucket.take(n as f64, Instant::now()).map_err(|wait| {
                ApiError::rate_limited("this service is over its tokens_per_minute", wait)
            })?;
        }
        Ok(())
    }

    /// Charge `used` tokens against the `reserved` ones (the prompt on admission, with nothing
    /// reserved; the generated tokens at the end, giving back what was reserved and not used).
    /// The balance may go below zero: a request already running is never cut short, the
    /// service's next ones wait instead.
    pub fn settle_tokens(&self, reserved: usize, used: usize) {
        if let Some(bucket) = &self.tokens {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.charge(used as f64 - reserved as f64, Instant::now());
        }
    }
}

/// A token bucket refilled continuously at `per_minute`, holding at most one minute's worth.
struct Bucket {
    level: f64,
    per_minute: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Bucket {
        Bucket {
            level: f64::from(per_minute),
            per_minute: f64::from(per_minute),
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.per_minute / 60.0).min(self.per_minute);
        self.at = now;
    }

    /// Time until the level would reach `level`.
    fn wait_until(&self, level: f64) -> Duration {
        Duration::from_secs_f64(((level - self.level) * 60.0 / self.per_minute).max(0.0))
    }

    /// Take `n` if the bucket holds them; otherwise how long until it will.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.level >= n {
            self.level -= n;
            Ok(())
        } else {
            Err(self.wait_until(n))
        }
    }

    /// Ok while the balance is positive; otherwise how long until it will be.
    fn wait_for_credit(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.level > 0.0 {
            Ok(())
        } else {
            Err(self.wait_until(1.0))
        }
    }

    fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level - n).min(self.per_minute);
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Lowercase hex of sha256(`data`).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(extra: &str) -> Keys {
        let text = format!(
            "[[service]]\nname = \"lab\"\nkey_sha256 = \"{}\"\nmodels = [\"m\"]\n{extra}",
            sha256_hex(b"secret-lab")
        );
        Keys::parse(&text).unwrap()
    }

    #[test]
    fn finds_the_service_by_its_key_only() {
        let k = keys("");
        assert_eq!(
            k.authenticate(Some("Bearer secret-lab")).unwrap().name,
            "lab"
        );
        assert_eq!(
            k.authenticate(Some("bearer secret-lab")).unwrap().name,
            "lab"
        );
        for bad in [
            None,
            Some("secret-lab"),
            Some("Bearer "),
            Some("Bearer secret-la"),
            Some("Basic x"),
        ] {
            let status = k.authenticate(bad).err().map(|e| e.status.as_u16());
            assert_eq!(status, Some(401), "{bad:?}");
        }
    }

    #[test]
    fn models_are_allowed_by_name_or_star() {
        let k = keys("");
        let s = k.authenticate(Some("Bearer secret-lab")).unwrap();
        assert!(s.may_use("m"));
        assert!(!s.may_use("other"));
        let star = Keys::parse(&format!(
            "[[service]]\nname = \"a\"\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n",
            sha256_hex(b"k")
        ))
        .unwrap();
        assert!(star.services[0].may_use("anything"));
    }

    #[test]
    fn refuses_mistakes_in_the_file() {
        let h = sha256_hex(b"k");
        for (text, wanted) in [
            (String::new(), "no [[service]]"),
            (format!("[[service]]\nname = \"a\"\nkey_sha256 = \"{h}\"\nmodels = [\"*\"]\nrequest_per_minute = 5\n"), "unknown field"),
            ("[[service]]\nname = \"a\"\nkey_sha256 = \"abc\"\nmodels = [\"*\"]\n".into(), "64 hex"),
            (format!("[[service]]\nname = \"a b\"\nkey_sha256 = \"{h}\"\nmodels = [\"*\"]\n"), "letters"),
            (format!("[[service]]\nname = \"a\"\nkey_sha256 = \"{h}\"\nmodels = []\n"), "empty"),
            (format!("[[service]]\nname = \"a\"\nkey_sha256 = \"{h}\"\nmodels = [\"*\"]\n[[service]]\nname = \"b\"\nkey_sha256 = \"{h}\"\nmodels = [\"*\"]\n"), "same key"),
            (format!("[[service]]\nname = \"a\"\nkey_sha256 = \"{h}\"\nmodels = [\"*\"]\ntokens_per_minute = 0\n"), "at least 1"),
        ] {
            let err = Keys::parse(&text).err().unwrap_or_default();
            assert!(err.contains(wanted), "{err:?} should say {wanted:?}");
        }
    }

    #[test]
    fn request_rate_refills_over_time() {
        let mut b = Bucket::new(2);
        let t0 = b.at;
        assert!(b.take(1.0, t0).is_ok());
        assert!(b.take(1.0, t0).is_ok());
        let wait = b.take(1.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 30.0).abs() < 0.01, "{wait:?}");
        assert!(b.take(1.0, t0 + Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn token_rate_allows_debt_then_waits() {
        let mut b = Bucket::new(600);
        let t0 = b.at;
        b.charge(900.0, t0);
        let wait = b.wait_for_credit(t0).unwrap_err();
        // 301 tokens short at 10 per second.
        assert!((wait.as_secs_f64() - 30.1).abs() < 0.01, "{wait:?}");
        assert!(b.wait_for_credit(t0 + Duration::from_secs(31)).is_ok());
    }
}
