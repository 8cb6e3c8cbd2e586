//! `ward audit verify` on arbitrary files: the input is split at NUL bytes into PATH, PATH.1,
//! PATH.2, PATH.3 and the checkpoints file (an empty piece is a file that is not there:
//! removed by retention, never rotated, or no checkpoints), written to a scratch directory and
//! verified as an auditor verifies it: without the key, then with it (the seeds are sealed with
//! it, so MACs can match) and the checkpoints. Any files must give a report, never a panic or a
//! hang. Kept to the public call, so it follows the audit log as it changes.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ward_server::audit::{verify, SealKey};

/// The initial key the seeds are sealed with (fuzz/make-seeds.py).
const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let path = dir.join("audit.log");
    let checkpoints = dir.join("checkpoints");
    for (n, file) in data.split(|&b| b == 0).enumerate().take(5) {
        let name = match n {
            0 => path.clone(),
            4 => checkpoints.clone(),
            n => dir.join(format!("audit.log.{n}")),
        };
        if !file.is_empty() {
            std::fs::write(name, file).expect("a scratch file");
        }
    }
    let unkeyed = verify(&path, None, None);
    let key = SealKey::new(KEY);
    let cps = checkpoints.exists().then_some(checkpoints.as_path());
    let keyed = verify(&path, Some(&key), cps);
    // WARD_FUZZ_DEBUG=1: each report, to check that the seeds verify.
    if std::env::var_os("WARD_FUZZ_DEBUG").is_some() {
        eprintln!("unkeyed: {unkeyed:?}\nkeyed: {keyed:?}");
    }
    for entry in std::fs::read_dir(dir).expect("the scratch directory") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("a scratch file");
    }
});

/// A scratch directory of this process's own.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ward-fuzz-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}
