//! Refused requests (no or a wrong API key, over a service's rate), counted per client address
//! so a flood of them cannot fill the disk through the audit log. In each minute an address's
//! first refusals are audited one entry each; past that allowance its refusals are answered
//! 429 (`too_many_refusals`, until the minute ends) and only counted, and the counts go into
//! one aggregate `refusals` entry per minute: by address, reason and status.
//!
//! Requests with a valid key are never held back by their address's refusals: behind a proxy
//! every caller shares one address, and one misconfigured service must not lock out the rest.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::audit::timestamp_now;

/// The client's address, as the connection loop saw it.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// How long one window of counts lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Refusals per address and window that get an audit entry each.
pub const AUDITED_PER_ADDRESS: u32 = 20;
/// Addresses counted apart per window; past that, new ones share one count, so a flood from
/// many addresses cannot grow this table without bound.
const MAX_ADDRESSES: usize = 4096;

pub enum Note {
    /// Within the address's allowance: refuse as usual, with an audit entry of its own.
    Audit,
    /// Past it: answer 429 for this long, counted in the aggregate only.
    Limited(Duration),
}

pub struct Refusals {
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    since: String,
    /// Refusals per address (`None`: unknown, or past MAX_ADDRESSES) in this window.
    per_address: HashMap<Option<IpAddr>, u32>,
    /// Refusals past the allowance: (address, reason, status) → count.
    aggregated: BTreeMap<(String, &'static str, u16), u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            started: Instant::now(),
            since: timestamp_now(),
            per_address: HashMap::new(),
            aggregated: BTreeMap::new(),
        }
    }
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            window: Mutex::new(Window::new()),
        }
    }
}

impl Refusals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a refusal (`code`, `status`) from `addr`.
    pub fn note(&self, addr: Option<IpAddr>, code: &'static str, status: u16) -> Note {
        let mut w = self.lock();
        let key = if w.per_address.len() < MAX_ADDRESSES || w.per_address.contains_key(&addr) {
            addr
        } else {
            None
        };
        let n = w.per_address.entry(key).or_insert(0);
        *n += 1;
        if *n <= AUDITED_PER_ADDRESS {
            return Note::Audit;
        }
        let shown = key.map_or("other".to_string(), |a| a.to_string());
        *w.aggregated.entry((shown, code, status)).or_insert(0) += 1;
        Note::Limited(WINDOW.saturating_sub(w.started.elapsed()))
    }

    /// When the window is over (or `now_anyway`, at stop): its aggregate entry, if any refusal
    /// was only counted, and a new window.
    pub fn take_due(&self, now_anyway: bool) -> Option<Map<String, Value>> {
        let mut w = self.lock();
        if !now_anyway && w.started.elapsed() < WINDOW {
            return None;
        }
        let done = std::mem::replace(&mut *w, Window::new());
        drop(w);
        if done.aggregated.is_empty() {
            return None;
        }
        let refused: Vec<Value> = done
            .aggregated
            .iter()
            .map(|((address, code, status), count)| {
                json!({"address": address, "code": code, "status": status, "count": count})
            })
            .collect();
        let entry = json!({
            "time": timestamp_now(),
            "event": "refusals",
            "since": done.since,
            "audited_per_address": AUDITED_PER_ADDRESS,
            "refused": refused,
        });
        match entry {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_allowance_refusals_are_limited_and_aggregated() {
        let r = Refusals::default();
        let a: IpAddr = "10.0.0.7".parse().unwrap();
        let b: IpAddr = "10.0.0.8".parse().unwrap();
        for _ in 0..AUDITED_PER_ADDRESS {
            assert!(matches!(
                r.note(Some(a), "invalid_api_key", 401),
                Note::Audit
            ));
        }
        for _ in 0..1000 {
            let Note::Limited(wait) = r.note(Some(a), "invalid_api_key", 401) else {
                panic!("not limited");
            };
            assert!(wait <= WINDOW);
        }
        // Another address has its own allowance.
        assert!(matches!(
            r.note(Some(b), "invalid_api_key", 401),
            Note::Audit
        ));
        assert!(r.take_due(false).is_none(), "the window is not over");
        let entry = r.take_due(true).unwrap();
        assert_eq!(entry["event"], "refusals");
        assert_eq!(
            entry["refused"],
            json!([{"address": "10.0.0.7", "code": "invalid_api_key", "status": 401, "count": 1000}])
        );
        // A new window: the allowance is back, and nothing is left to report.
        assert!(matches!(
            r.note(Some(a), "invalid_api_key", 401),
            Note::Audit
        ));
        assert!(r.take_due(true).is_none());
    }

    #[test]
    fn a_flood_from_many_addresses_stays_bounded() {
        let r = Refusals::default();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let addr = IpAddr::from(i.to_be_bytes());
            for _ in 0..=AUDITED_PER_ADDRESS {
                r.note(Some(addr), "invalid_api_key", 401);
            }
        }
        assert!(r.lock().per_address.len() <= MAX_ADDRESSES + 1);
        let entry = r.take_due(true).unwrap();
        let rows = entry["refused"].as_array().unwrap();
        assert!(rows.len() <= MAX_ADDRESSES + 1);
        assert!(rows.iter().any(|row| row["address"] == "other"));
    }
}
