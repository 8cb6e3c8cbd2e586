//! How an audit entry is sealed: its line format, the chain fields, and the key.
//!
//! A line is a JSON object whose last field is `"mac"`: the MAC of the line's bytes without
//! that field (the body, which ends `…,"prev":"…"}`). The body carries `seq` (0, 1, 2, … along
//! the whole chain, across rotated files), `prev` (the previous entry's `mac`; 64 zeros for the
//! first) and, in a keyed log, `epoch`. The MAC is HMAC-SHA256 under the key of that epoch, so
//! without the key nobody can recompute the chain after editing it. An unkeyed log uses plain
//! sha256 instead: it shows accidents, not tampering.
//!
//! The key is forward-secure: at each seal (checkpoint) the server replaces key_n with
//! key_{n+1} = HMAC(key_n, "ward-audit-evolve") in its key file, so someone who later steals the
//! server's key cannot rewrite entries of earlier epochs. The auditor keeps key_0 and derives
//! forward.
//!
//! A request's entry also identifies its prompt and outputs by hash ([`Content`]). In a keyed
//! log these are keyed too (`prompt_hmac`, `output_hmac`: HMAC-SHA256 under
//! HMAC(key_n, "ward-audit-content"), key_n being the epoch key the entry is sealed with), so
//! nobody without the key can confirm a guessed prompt by hashing candidates; in an unkeyed log
//! they are plain sha256 (`prompt_sha256`, `output_sha256`), and guessable.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::hex;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const EVOLVE: &[u8] = b"ward-audit-evolve";
/// Derives an epoch's key for content hashes. Domain-separated from key evolution (another
/// label) and from the chain MAC, whose input is always a JSON object (it starts with `{`).
const CONTENT: &[u8] = b"ward-audit-content";
/// `,"mac":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = 8 + 64 + 2;

/// An audit key at some epoch.
#[derive(Clone)]
pub struct SealKey {
    key: [u8; 32],
    pub epoch: u64,
}

impl Drop for SealKey {
    fn drop(&mut self) {
        // Best effort: an old epoch's key should not outlive its use in memory.
        self.key.fill(0);
        std::hint::black_box(&self.key);
    }
}

impl SealKey {
    pub fn new(key: [u8; 32]) -> SealKey {
        SealKey { key, epoch: 0 }
    }

    /// A key file's text: 64 hex digits (epoch 0, as `ward keys audit` makes it and as the
    /// auditor keeps it), or `epoch = N` and `key = "…"` lines (the server's evolved key).
    pub fn parse(text: &str) -> Result<SealKey, String> {
        let plain = text.trim();
        if let Some(key) = parse_hex32(plain) {
            return Ok(SealKey::new(key));
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            epoch: u64,
            key: String,
        }
        let file: File = toml::from_str(text).map_err(|_| {
            "not an audit key (64 hex digits, or the epoch and key lines `ward serve` writes)"
                .to_string()
        })?;
        let key = parse_hex32(&file.key).ok_or("the key must be 64 hex digits")?;
        Ok(SealKey {
            key,
            epoch: file.epoch,
        })
    }

    pub fn load(path: &Path) -> Result<SealKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the audit key {}: {e}", path.display()))?;
        SealKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The key file's text for this epoch.
    pub fn file_text(&self) -> String {
        format!(
            "# Ward's audit key (forward-secure: ward serve replaces it at every checkpoint).\n\
             # Readable by ward only. The auditor keeps the initial key elsewhere.\n\
             epoch = {}\nkey = \"{}\"\n",
            self.epoch,
            hex(&self.key)
        )
    }

    /// Write the key to `path` (mode 0600) through a temporary file and a rename, so a crash
    /// leaves the old key or the new one, never half of one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(self.file_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    }

    /// The next epoch's key; this one should then be forgotten.
    pub fn evolved(&self) -> SealKey {
        SealKey {
            key: self.mac(EVOLVE),
            epoch: self.epoch + 1,
        }
    }

    /// This key carried forward to `epoch` (which must not be earlier).
    pub fn at_epoch(&self, epoch: u64) -> Option<SealKey> {
        if epoch < self.epoch {
            return None;
        }
        let mut k = self.clone();
        while k.epoch < epoch {
            k = k.evolved();
        }
        Some(k)
    }

    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The keyed hash of an entry's content (its canonical prompt, or one choice's output) in
    /// this epoch: HMAC-SHA256 under HMAC(key, "ward-audit-content").
    pub fn content_mac(&self, data: &[u8]) -> [u8; 32] {
        let mut sub = self.mac(CONTENT);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&sub).expect("any key length");
        sub.fill(0);
        std::hint::black_box(&sub);
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Whether `other` is this key (same epoch and bytes).
    pub fn same_as(&self, other: &SealKey) -> bool {
        self.epoch == other.epoch && self.key == other.key
    }
}

/// fsync the directory holding `path`, so a rename or a new file survives a crash.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The MAC of a body: HMAC under `key`, or plain sha256 in an unkeyed log.
pub fn mac_of(key: Option<&SealKey>, body: &[u8]) -> String {
    match key {
        Some(k) => hex(&k.mac(body)),
        None => hex(&Sha256::digest(body)),
    }
}

/// What a request's entry identifies by hash: its prompt in canonical form and each choice's
/// output. Kept only until the writer seals the entry, which is when the epoch (and so the key)
/// of its hashes is known; then hashed and dropped. No `Debug`: it holds patient text.
pub struct Content {
    prompt: Option<String>,
    outputs: Vec<String>,
}

impl Content {
    /// `prompt`: the request's `messages`, `prompt` or `input` value (put in canonical form
    /// here); `outputs`: each choice's text, in choice order.
    pub fn new(prompt: Option<&Value>, outputs: Vec<String>) -> Content {
        Content {
            prompt: prompt.map(canonical_json),
            outputs,
        }
    }

    /// Add the entry's hashes, after `completion_tokens` where it has one: keyed
    /// (`prompt_hmac`, `output_hmac`) under `key`, the key the entry is sealed with, or plain
    /// sha256 (`prompt_sha256`, `output_sha256`) in an unkeyed log.
    pub fn hash_into(self, key: Option<&SealKey>, entry: &mut Map<String, Value>) {
        let (prompt_field, output_field) = content_fields(key.is_some());
        let prompt = self
            .prompt
            .as_deref()
            .map(|p| content_hash(key, p.as_bytes()));
        let outputs: Vec<Value> = self
            .outputs
            .iter()
            .map(|o| content_hash(key, o.as_bytes()).into())
            .collect();
        let at = entry
            .keys()
            .position(|k| k == "completion_tokens")
            .map_or(entry.len(), |i| i + 1);
        entry.shift_insert(at, prompt_field.into(), prompt.into());
        entry.shift_insert(at + 1, output_field.into(), outputs.into());
    }
}

/// The names of an entry's prompt and output hashes, keyed or not.
pub fn content_fields(keyed: bool) -> (&'static str, &'static str) {
    if keyed {
        ("prompt_hmac", "output_hmac")
    } else {
        ("prompt_sha256", "output_sha256")
    }
}

/// A content hash: keyed under `key` (at the entry's epoch), or plain sha256 when unkeyed.
pub fn content_hash(key: Option<&SealKey>, data: &[u8]) -> String {
    match key {
        Some(k) => hex(&k.content_mac(data)),
        None => hex(&Sha256::digest(data)),
    }
}

/// `value` as compact JSON with every object's keys sorted, as Python's
/// `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes it: the
/// audit log's canonical form of a prompt. (serde_json keeps keys in the order they came.)
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// `entry` as a sealed line (without its newline): the chain fields added, then the MAC.
pub fn seal(
    mut entry: Map<String, Value>,
    seq: u64,
    prev: &str,
    key: Option<&SealKey>,
) -> (String, String) {
    for field in ["seq", "epoch", "prev", "mac"] {
        entry.remove(field);
    }
    entry.insert("seq".into(), seq.into());
    if let Some(k) = key {
        entry.insert("epoch".into(), k.epoch.into());
    }
    entry.insert("prev".into(), prev.into());
    let body = Value::Object(entry).to_string();
    let mac = mac_of(key, body.as_bytes());
    let line = format!("{},\"mac\":\"{mac}\"}}", &body[..body.len() - 1]);
    (line, mac)
}

/// A line read back: its chain fields, its fields, and the body its MAC covers.
pub struct Sealed {
    pub seq: u64,
    pub prev: String,
    pub epoch: Option<u64>,
    pub mac: String,
    pub body: Vec<u8>,
    pub fields: Map<String, Value>,
}

impl Sealed {
    /// Parse a line (without its newline); `None` if it is not a sealed entry.
    pub fn parse(line: &[u8]) -> Option<Sealed> {
        let split = line.len().checked_sub(SUFFIX_LEN)?;
        let (head, suffix) = line.split_at(split);
        let mac = suffix.strip_prefix(b",\"mac\":\"")?.strip_suffix(b"\"}")?;
        let mac = std::str::from_utf8(mac).ok()?;
        if !mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut body = head.to_vec();
        body.push(b'}');
        let fields: Map<String, Value> = serde_json::from_slice(&body).ok()?;
        let prev = fields.get("prev")?.as_str()?.to_string();
        parse_hex32(&prev)?;
        let epoch = match fields.get("epoch") {
            None => None,
            Some(e) => Some(e.as_u64()?),
        };
        Some(Sealed {
            seq: fields.get("seq")?.as_u64()?,
            prev,
            epoch,
            mac: mac.to_string(),
            body,
            fields,
        })
    }

    /// Whether the MAC matches the body under `key` (at the entry's epoch), or under plain
    /// sha256 when the log is unkeyed.
    pub fn mac_ok(&self, key: Option<&SealKey>) -> bool {
        mac_of(key, &self.body) == self.mac
    }

    pub fn event(&self) -> &str {
        self.fields
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sealed_line_reads_back_and_its_mac_checks() {
        let key = SealKey::new([7; 32]).evolved();
        let entry = json!({"event": "request", "status": 200, "mac": "x"});
        let Value::Object(entry) = entry else {
            unreachable!()
        };
        let (line, mac) = seal(entry, 5, GENESIS, Some(&key));
        assert!(line.ends_with(&format!(",\"mac\":\"{mac}\"}}")), "{line}");
        let s = Sealed::parse(line.as_bytes()).unwrap();
        assert_eq!((s.seq, s.epoch, s.prev.as_str()), (5, Some(1), GENESIS));
        assert!(s.mac_ok(Some(&key)));
        assert!(!s.mac_ok(Some(&SealKey::new([7; 32]))));
        assert!(!s.mac_ok(None));
        let edited = line.replace("200", "201");
        assert!(!Sealed::parse(edited.as_bytes()).unwrap().mac_ok(Some(&key)));
        for bad in ["", "{}", "garbage", "{\"seq\":1,\"prev\":\"00\"}"] {
            assert!(Sealed::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_evolve_forward_only_and_round_trip_through_their_file() {
        let k0 = SealKey::new([1; 32]);
        let k3 = k0.evolved().evolved().evolved();
        assert!(k0.at_epoch(3).unwrap().same_as(&k3));
        assert!(k3.at_epoch(2).is_none());
        assert!(SealKey::parse(&k3.file_text()).unwrap().same_as(&k3));
        assert!(SealKey::parse(&hex(&[1; 32])).unwrap().same_as(&k0));
        assert!(SealKey::parse("epoch = 1\nkey = \"abc\"\n").is_err());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v: Value = serde_json::from_str(
            r#"[{"role":"user","content":[{"type":"text","text":"é"}]},{"z":1,"a":{"y":2,"b":3}}]"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"[{"content":[{"text":"é","type":"text"}],"role":"user"},{"a":{"b":3,"y":2},"z":1}]"#
        );
    }

    /// HMAC-SHA256 written out, independently of `SealKey`.
    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn content_hashes_are_keyed_per_epoch_and_apart_from_the_chain() {
        let text = b"Is patient 4711 HIV positive?";
        let k0 = SealKey::new([3; 32]);
        // HMAC(HMAC(key_n, "ward-audit-content"), text), as an auditor would compute it.
        let sub = hmac(&[3; 32], b"ward-audit-content");
        assert_eq!(k0.content_mac(text), hmac(&sub, text));
        // Not the plain hash, not the chain MAC, not the key under another key or epoch.
        let plain: [u8; 32] = Sha256::digest(text).into();
        assert_ne!(k0.content_mac(text), plain);
        assert_ne!(k0.content_mac(text), k0.mac(text));
        assert_ne!(
            k0.content_mac(text),
            SealKey::new([4; 32]).content_mac(text)
        );
        assert_ne!(k0.content_mac(text), k0.evolved().content_mac(text));
        assert_ne!(k0.mac(CONTENT), k0.evolved().key);
        assert_eq!(content_hash(None, text), hex(&plain));
        assert_eq!(content_hash(Some(&k0), text), hex(&hmac(&sub, text)));
    }

    #[test]
    fn content_hashes_go_after_the_token_counts_under_their_own_names() {
        let Value::Object(entry) = json!({"event": "request", "completion_tokens": 2, "params": 1})
        else {
            unreachable!()
        };
        let prompt = json!([{"role": "user", "content": "hi"}]);
        let content = || Content::new(Some(&prompt), vec!["a".into(), "b".into()]);
        let mut keyed = entry.clone();
        let k = SealKey::new([9; 32]);
        content().hash_into(Some(&k), &mut keyed);
        let names: Vec<&str> = keyed.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "event",
                "completion_tokens",
                "prompt_hmac",
                "output_hmac",
                "params"
            ]
        );
        let canonical = r#"[{"content":"hi","role":"user"}]"#;
        assert_eq!(
            keyed["prompt_hmac"],
            hex(&k.content_mac(canonical.as_bytes()))
        );
        assert_eq!(
            keyed["output_hmac"],
            json!([hex(&k.content_mac(b"a")), hex(&k.content_mac(b"b"))])
        );
        let mut plain = entry;
        content().hash_into(None, &mut plain);
        assert_eq!(plain["prompt_sha256"], hex(&Sha256::digest(canonical)));
        assert!(plain.get("prompt_hmac").is_none() && keyed.get("prompt_sha256").is_none());
        let mut none = Map::new();
        Content::new(None, vec![]).hash_into(Some(&k), &mut none);
        assert_eq!(
            Value::Object(none),
            json!({"prompt_hmac": null, "output_hmac": []})
        );
    }
}
