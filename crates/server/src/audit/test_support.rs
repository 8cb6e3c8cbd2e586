//! What the audit log's tests share: a keyed log written by real server runs, and ways to
//! change its files as an attacker would.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::files::{numbered, oldest_first, rotated};
use super::seal::{seal, SealKey, Sealed, GENESIS};
use super::*;

pub(super) fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ward-audit-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn entry(i: u64) -> Map<String, Value> {
    let Value::Object(m) =
        json!({"event": "request", "request_id": format!("r{i}"), "status": 200})
    else {
        unreachable!()
    };
    m
}

pub(super) fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

pub(super) fn write_lines(p: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(p, text).unwrap();
}

/// A keyed log with its key in one directory, the log in another, checkpoints in a third.
pub(super) struct Fx {
    pub log: PathBuf,
    pub key: PathBuf,
    pub cps: PathBuf,
    pub k0: SealKey,
    pub opts: AuditOptions,
}

impl Fx {
    pub(super) fn new() -> Fx {
        let dir = tempdir();
        for sub in ["log", "secret", "remote"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let key = dir.join("secret/audit.key");
        write_key(&key, &crate::auth::hex(&[0x5a; 32]));
        let log = dir.join("log/audit.log");
        let cps = dir.join("remote/checkpoints");
        let opts = AuditOptions {
            key: Some(key.clone()),
            checkpoints: Some(cps.clone()),
            max_file_bytes: 2048,
            checkpoint_entries: 4,
            ..AuditOptions::new(&log)
        };
        Fx {
            log,
            key,
            cps,
            k0: SealKey::new([0x5a; 32]),
            opts,
        }
    }

    /// Two runs of the server: rotated files, several epochs and checkpoints, a restart.
    pub(super) fn standard() -> Fx {
        let fx = Fx::new();
        fx.run(0..25);
        fx.run(25..50);
        assert!(rotated(&fx.log).len() >= 4, "{:?}", rotated(&fx.log));
        let v = fx.verify();
        assert!(v.broken.is_none() && v.notes.is_empty(), "{v:?}");
        fx
    }

    /// Open the log, write `range` one entry (one sync) at a time, close it.
    pub(super) fn run(&self, range: std::ops::Range<u64>) {
        let log = AuditLog::open(self.opts.clone()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for i in range {
            assert!(rt.block_on(log.commit(entry(i))));
        }
        log.close();
    }

    pub(super) fn verify(&self) -> Verified {
        verify(&self.log, Some(&self.k0), Some(&self.cps)).unwrap()
    }

    pub(super) fn rot(&self, n: u32) -> PathBuf {
        numbered(&self.log, n)
    }

    pub(super) fn newest_rotated(&self) -> u32 {
        rotated(&self.log).last().unwrap().0
    }

    pub(super) fn edit(&self, p: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let mut lines = read_lines(p);
        f(&mut lines);
        write_lines(p, &lines);
    }

    /// Re-seal every entry from `from_seq` on (all files), as an attacker with `key` would.
    pub(super) fn reseal(&self, from_seq: u64, key: Option<&SealKey>) {
        let mut prev = GENESIS.to_string();
        for file in oldest_first(&self.log) {
            let lines = read_lines(&file)
                .into_iter()
                .map(|line| {
                    let e = Sealed::parse(line.as_bytes()).unwrap();
                    if e.seq < from_seq {
                        prev = e.mac;
                        return line;
                    }
                    let (line, mac) = seal(e.fields, e.seq, &prev, key);
                    prev = mac;
                    line
                })
                .collect::<Vec<_>>();
            write_lines(&file, &lines);
        }
    }
}

pub(super) fn write_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
