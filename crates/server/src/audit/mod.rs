//! The audit log (`--audit-log PATH`): one sealed JSON line per request, append-only and
//! chained, so that editing, removing, inserting or reordering entries is found by [`verify`].
//!
//! - `seal.rs`: the line format, the chain fields and the (forward-secure) key;
//! - `writer.rs`: the thread that writes, syncs, rotates, keeps retention and the disk
//!   budget, writes checkpoints and evolves the key;
//! - `verify.rs`: what `ward audit verify` checks;
//! - `check.rs`: what `ward audit check` checks (a prompt or output against one entry);
//! - `files.rs`: the log's files.
//!
//! The log fails closed: while entries cannot be written and synced, [`AuditLog::available`]
//! is false and the server refuses requests (503 `audit_unavailable`); a request's answer is
//! released only once its entry is synced ([`AuditLog::commit`]).

mod check;
mod files;
#[cfg(test)]
mod log_tests;
mod seal;
#[cfg(test)]
mod tamper_tests;
#[cfg(test)]
mod test_support;
mod verify;
mod writer;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

pub use check::{check, Checked};
pub use seal::{canonical_json, Content, SealKey};
pub use verify::{verify, Verified};

/// How the log is kept.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub path: PathBuf,
    /// A file is rotated (to `PATH.N`) before it would pass this size.
    pub max_file_bytes: u64,
    /// All the log's files together; past it the log fails closed (or, with `retain`, the
    /// oldest rotated files are deleted).
    pub max_total_bytes: Option<u64>,
    /// Rotated files kept; older ones are deleted, each deletion recorded in the chain. `None`:
    /// nothing is ever deleted.
    pub retain: Option<u32>,
    /// Whether entries may carry prompt and output text (`--audit-include-text`).
    pub include_text: bool,
    /// The key file (`ward keys audit`); `None`: an unkeyed chain.
    pub key: Option<PathBuf>,
    /// Where signed checkpoints go (needs a key).
    pub checkpoints: Option<PathBuf>,
    /// A checkpoint (and a new key epoch) after this long or this many entries.
    pub checkpoint_every: Duration,
    pub checkpoint_entries: u64,
}

impl AuditOptions {
    pub fn new(path: impl Into<PathBuf>) -> AuditOptions {
        AuditOptions {
            path: path.into(),
            max_file_bytes: 256 << 20,
            max_total_bytes: None,
            retain: None,
            include_text: false,
            key: None,
            checkpoints: None,
            checkpoint_every: Duration::from_secs(60),
            checkpoint_entries: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(pub String);

/// What the writer tells the server.
#[derive(Default)]
struct Status {
    /// Entries are being written and synced.
    available: AtomicBool,
    /// Failed writes or syncs.
    failures: AtomicU64,
    /// Entries nobody waited for that could not be written.
    lost: AtomicU64,
    checkpoint_failures: AtomicU64,
}

struct Job {
    entry: Map<String, Value>,
    /// What the entry's prompt and output hashes are made of: hashed when the entry is sealed,
    /// under that epoch's key, then dropped.
    content: Option<Content>,
    /// Told whether the entry was written and synced.
    done: Option<tokio::sync::oneshot::Sender<bool>>,
}

pub struct AuditLog {
    tx: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    status: Arc<Status>,
    /// Whether entries may carry prompt and output text (`--audit-include-text`).
    pub include_text: bool,
}

impl AuditLog {
    /// Open (or create) the log, continuing its chain, after checking that it can be written
    /// and synced and that the key (if any) is kept safely and belongs to it.
    pub fn open(opts: AuditOptions) -> Result<AuditLog, AuditError> {
        if let Some(key) = &opts.key {
            check_key_file(key, &opts.path)?;
        }
        if opts.checkpoints.is_some() && opts.key.is_none() {
            return Err(AuditError(
                "audit checkpoints need a key (--audit-key): unkeyed ones prove nothing".into(),
            ));
        }
        let status = Arc::new(Status::default());
        let include_text = opts.include_text;
        let writer = writer::Writer::open(opts, status.clone())?;
        status.available.store(true, Ordering::SeqCst);
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("ward-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError(format!("cannot start the audit writer: {e}")))?;
        Ok(AuditLog {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            status,
            include_text,
        })
    }

    fn send(&self, job: Job) -> bool {
        match self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Queue an entry nobody waits for; the writer adds the chain fields.
    pub fn append(&self, entry: Map<String, Value>) {
        self.append_with(entry, None);
    }

    /// [`append`](Self::append), with the content whose hashes the writer adds to the entry
    /// (keyed under the epoch it is sealed in).
    pub fn append_with(&self, entry: Map<String, Value>, content: Option<Content>) {
        let job = Job {
            entry,
            content,
            done: None,
        };
        if !self.send(job) {
            self.status.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queue an entry; the future says whether it was written and synced. Entries queued
    /// together share one sync.
    pub fn commit(
        &self,
        entry: Map<String, Value>,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        self.commit_with(entry, None)
    }

    /// [`commit`](Self::commit), with the content whose hashes the writer adds to the entry.
    pub fn commit_with(
        &self,
        entry: Map<String, Value>,
        content: Option<Content>,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let (done, written) = tokio::sync::oneshot::channel();
        let sent = self.send(Job {
            entry,
            content,
            done: Some(done),
        });
        async move { sent && written.await.unwrap_or(false) }
    }

    /// Whether entries are being written; while not, requests are refused.
    pub fn available(&self) -> bool {
        self.status.available.load(Ordering::SeqCst)
    }

    /// Write everything queued, seal the last epoch and stop the writer; later entries are
    /// not written.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
        self.status.available.store(false, Ordering::SeqCst);
    }

    /// The log's lines of `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        let s = &self.status;
        let rows = [
            ("ward_audit_available", "gauge", "1 while audit entries are written and synced; 0 while requests are refused with 503 audit_unavailable.", u64::from(self.available())),
            ("ward_audit_write_failures_total", "counter", "Failed writes or syncs of the audit log.", s.failures.load(Ordering::Relaxed)),
            ("ward_audit_entries_lost_total", "counter", "Audit entries that could not be written (no answer waited for them).", s.lost.load(Ordering::Relaxed)),
            ("ward_audit_checkpoint_failures_total", "counter", "Checkpoints that could not be written.", s.checkpoint_failures.load(Ordering::Relaxed)),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The key must be readable by the service alone and kept outside the log's directory (whoever
/// may touch the log must not find the key beside it).
fn check_key_file(key: &Path, log: &Path) -> Result<(), AuditError> {
    let meta = std::fs::metadata(key)
        .map_err(|e| AuditError(format!("cannot read the audit key {}: {e}", key.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(AuditError(format!(
                "the audit key {} may be read by others (mode {:o}): make it 0600",
                key.display(),
                mode & 0o777
            )));
        }
    }
    let _ = meta;
    let dir_of = |p: &Path| -> Option<PathBuf> {
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        parent.canonicalize().ok()
    };
    if let (Some(key_dir), Some(log_dir)) = (dir_of(key), dir_of(log)) {
        if key_dir.starts_with(&log_dir) {
            return Err(AuditError(format!(
                "the audit key {} is inside the log's directory {}: keep it elsewhere",
                key.display(),
                log_dir.display()
            )));
        }
    }
    Ok(())
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-30T04:38:09.123Z`).
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    timestamp(now.as_secs(), now.subsec_millis())
}

pub(crate) fn timestamp(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
