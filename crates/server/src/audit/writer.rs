//! The writer thread: seals entries into the chain, writes each batch of entries queued
//! together with one `write` and one `fdatasync` (group commit), rotates, deletes old files
//! under retention (recording each deletion in the chain), keeps the disk budget, writes
//! checkpoints and evolves the key. A batch that cannot be written and synced is cut back to
//! the last whole entry and reported to its waiters; the log is then unavailable (requests get
//! 503) until a retry, every second, succeeds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::files::{numbered, rotated, summarize, tail, total_size};
use super::seal::{seal, sync_dir, SealKey, Sealed, GENESIS};
use super::{timestamp_now, AuditError, AuditOptions, Job, Status};

/// How often a failed log is tried again.
const RETRY: Duration = Duration::from_secs(1);

pub(super) struct Writer {
    opts: AuditOptions,
    file: File,
    /// Bytes of whole entries in the current file.
    size: u64,
    /// The next entry's `seq`, and the last entry's MAC.
    seq: u64,
    prev: String,
    key: Option<SealKey>,
    checkpoints: Option<Checkpoints>,
    /// Entries written since the last seal, and when that was.
    since_seal: u64,
    last_seal: Instant,
    status: Arc<Status>,
    /// Since when writes fail, and how many entries were not written meanwhile.
    failing: Option<(String, u64)>,
}

struct Checkpoints {
    path: PathBuf,
    file: File,
    size: u64,
    next: u64,
    prev: String,
}

fn err(context: &str, path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError(format!("{context} {}: {e}", path.display()))
}

/// Open `path` for appending, locked against a second writer.
fn open_locked(path: &Path) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| err("cannot open", path, e))?;
    file.try_lock().map_err(|_| {
        AuditError(format!(
            "{} is in use by another process (one writer per log)",
            path.display()
        ))
    })?;
    Ok(file)
}

/// Cut a torn last line off `path`; returns the size of its whole lines, their last line,
/// and how many bytes were cut.
fn cut_torn_tail(file: &File, path: &Path) -> Result<(u64, Option<Vec<u8>>, u64), AuditError> {
    let len = file
        .metadata()
        .map_err(|e| err("cannot read", path, e))?
        .len();
    if len == 0 {
        return Ok((0, None, 0));
    }
    let (end, last) = tail(path).map_err(|e| err("cannot read", path, e))?;
    if end < len {
        file.set_len(end)
            .and_then(|()| file.sync_data())
            .map_err(|e| err("cannot cut the torn last line of", path, e))?;
    }
    Ok((end, last, len - end))
}

impl Writer {
    /// Pick up the chain where the log ends (cutting a torn last line left by a crash), check
    /// that the key belongs to it, and prove that the log can be written and synced by writing
    /// an `open` entry.
    pub(super) fn open(opts: AuditOptions, status: Arc<Status>) -> Result<Writer, AuditError> {
        let path = opts.path.clone();
        let key = match &opts.key {
            Some(k) => Some(SealKey::load(k).map_err(AuditError)?),
            None => None,
        };
        let file = open_locked(&path)?;
        let (size, mut last, torn) = cut_torn_tail(&file, &path)?;
        if last.is_none() {
            if let Some((_, older)) = rotated(&path).last() {
                last = tail(older).map_err(|e| err("cannot read", older, e))?.1;
            }
        }
        let last = match last {
            None => None,
            Some(line) => Some(Sealed::parse(&line).ok_or_else(|| {
                AuditError(format!(
                    "the last line of the audit log {} is not a sealed entry (an older format, \
                     or damaged): check it with `ward audit verify`, move it aside and start anew",
                    path.display()
                ))
            })?),
        };
        check_key(key.as_ref(), last.as_ref(), &path)?;
        let checkpoints = match &opts.checkpoints {
            Some(p) => Some(Checkpoints::open(p)?),
            None => None,
        };
        let mut w = Writer {
            file,
            size,
            seq: last.as_ref().map_or(0, |e| e.seq + 1),
            prev: last.as_ref().map_or(GENESIS.into(), |e| e.mac.clone()),
            key,
            checkpoints,
            since_seal: 0,
            last_seal: Instant::now(),
            status,
            failing: None,
            opts,
        };
        let mut open = json!({
            "time": timestamp_now(),
            "event": "open",
            "version": env!("CARGO_PKG_VERSION"),
            "keyed": w.key.is_some(),
            "checkpoints": w.checkpoints.is_some(),
        });
        if torn > 0 {
            // The crash is recorded in the chain itself, not only in a log line.
            open["torn_bytes_removed"] = torn.into();
            tracing::warn!(path = %path.display(), torn, "audit log: removed a torn last line left by a crash");
        }
        let Value::Object(open) = open else {
            unreachable!()
        };
        w.write_batch(vec![open])
            .map_err(|e| err("cannot write and sync the audit log", &path, e))?;
        Ok(w)
    }

    pub(super) fn run(mut self, rx: Receiver<Job>) {
        loop {
            let mut jobs = Vec::new();
            let mut closing = false;
            match rx.recv_timeout(self.wait()) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => closing = true,
            }
            // Everything already queued goes out with one sync.
            jobs.extend(rx.try_iter());
            if self.failing.is_some() && !self.try_resume() {
                self.not_written(jobs);
            } else if !jobs.is_empty() {
                // The key changes only at a seal, between batches, so this batch is sealed with
                // the key its content is hashed under (and a failed batch is not written later).
                let key = self.key.as_ref();
                let (entries, done): (Vec<_>, Vec<_>) = jobs
                    .into_iter()
                    .map(|j| {
                        let mut entry = j.entry;
                        if let Some(content) = j.content {
                            content.hash_into(key, &mut entry);
                        }
                        (entry, j.done)
                    })
                    .unzip();
                let n = entries.len() as u64;
                let ok = match self.write_batch(entries) {
                    Ok(()) => true,
                    Err(e) => {
                        self.fail(&e, n);
                        false
                    }
                };
                for d in done.into_iter().flatten() {
                    let _ = d.send(ok);
                }
            }
            if self.failing.is_none() && self.seal_due(closing) {
                self.seal();
            }
            if closing {
                return;
            }
        }
    }

    /// How long to wait for entries before something else is due.
    fn wait(&self) -> Duration {
        if self.failing.is_some() {
            return RETRY;
        }
        if self.key.is_some() && self.since_seal > 0 {
            return self
                .opts
                .checkpoint_every
                .saturating_sub(self.last_seal.elapsed())
                .max(Duration::from_millis(10));
        }
        Duration::from_secs(3600)
    }

    fn not_written(&mut self, jobs: Vec<Job>) {
        if let Some((_, n)) = &mut self.failing {
            *n += jobs.len() as u64;
        }
        for job in jobs {
            match job.done {
                Some(d) => {
                    let _ = d.send(false);
                }
                None => {
                    self.status.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn fail(&mut self, e: &std::io::Error, entries: u64) {
        self.status.failures.fetch_add(1, Ordering::Relaxed);
        match &mut self.failing {
            Some((_, n)) => *n += entries,
            None => {
                // A full disk must be noticed by the operators: this line, the metric and
                // /ready all say so, and requests are refused until it is fixed.
                tracing::error!(error = %e, path = %self.opts.path.display(),
                    "audit log: cannot write; refusing requests until it can");
                self.failing = Some((timestamp_now(), entries));
                self.status.available.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Try the log again: it must hold no partial line, and take an entry saying what was
    /// not written while it failed.
    fn try_resume(&mut self) -> bool {
        let Some((since, unwritten)) = self.failing.clone() else {
            return true;
        };
        let len = self.file.metadata().map_or(u64::MAX, |m| m.len());
        if len != self.size && self.file.set_len(self.size).is_err() {
            return false;
        }
        // Out of budget: resume only with room for more than the next entry or two, so that
        // service does not flap on and off at the edge.
        if let Some(max) = self.opts.max_total_bytes {
            let headroom = (max / 10).min(1 << 20);
            if self.opts.retain.is_none() && total_size(&self.opts.path) + headroom > max {
                return false;
            }
        }
        let entry = json!({
            "time": timestamp_now(),
            "event": "audit_resumed",
            "failed_since": since,
            "unwritten": unwritten,
        });
        let Value::Object(entry) = entry else {
            unreachable!()
        };
        match self.write_batch(vec![entry]) {
            Ok(()) => {
                tracing::info!(unwritten, "audit log: writable again; accepting requests");
                self.failing = None;
                self.status.available.store(true, Ordering::SeqCst);
                true
            }
            Err(_) => false,
        }
    }

    /// Seal `entries` into the chain and write them with one write and one sync; on failure
    /// nothing of them stays in the file or the chain.
    fn write_batch(&mut self, entries: Vec<Map<String, Value>>) -> std::io::Result<()> {
        let (seq0, prev0) = (self.seq, self.prev.clone());
        let mut buf = self.seal_all(entries.clone());
        if self.size > 0 && self.size + buf.len() as u64 > self.opts.max_file_bytes {
            if let Err(e) = self.rotate() {
                tracing::error!(error = %e, "audit log: rotation failed; writing on");
            }
        }
        let deleted = match self.to_delete(buf.len() as u64) {
            Ok(d) => d,
            Err(e) => {
                (self.seq, self.prev) = (seq0, prev0);
                return Err(e);
            }
        };
        if !deleted.is_empty() {
            // The deletions go into the chain before the entries that made room.
            (self.seq, self.prev) = (seq0, prev0.clone());
            let mut all: Vec<Map<String, Value>> = deleted.iter().map(|(_, r)| r.clone()).collect();
            all.extend(entries);
            buf = self.seal_all(all);
        }
        let written = self.write_out(&buf).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // No partial line may stay behind: the next entry must start a line of its own.
            let _ = self.file.set_len(self.size);
            (self.seq, self.prev) = (seq0, prev0);
            return Err(e);
        }
        self.size += buf.len() as u64;
        self.since_seal += self.seq - seq0;
        for (path, _) in &deleted {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!(error = %e, file = %path.display(), "audit log: retention could not delete a file");
            }
        }
        if !deleted.is_empty() {
            let _ = sync_dir(&self.opts.path);
        }
        Ok(())
    }

    fn write_out(&mut self, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if faults::take(&self.opts.path) {
            // A disk that fills halfway through the batch.
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(std::io::Error::other("injected write failure"));
        }
        self.file.write_all(buf)
    }

    fn seal_all(&mut self, entries: Vec<Map<String, Value>>) -> Vec<u8> {
        let mut buf = Vec::new();
        for entry in entries {
            let (line, mac) = seal(entry, self.seq, &self.prev, self.key.as_ref());
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            self.seq += 1;
            self.prev = mac;
        }
        buf
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let path = &self.opts.path;
        let next = rotated(path).last().map_or(1, |(n, _)| n + 1);
        std::fs::rename(path, numbered(path, next))?;
        let file = open_locked(path).map_err(|e| std::io::Error::other(e.0))?;
        sync_dir(path)?;
        self.file = file;
        self.size = 0;
        Ok(())
    }

    /// Rotated files to delete before writing `len` more bytes, each with the retention entry
    /// that records it: beyond `--audit-retain` files, and, under retention, the oldest ones
    /// while the disk budget would be passed. Without retention a passed budget is an error.
    fn to_delete(&self, len: u64) -> std::io::Result<Vec<(PathBuf, Map<String, Value>)>> {
        let files = rotated(&self.opts.path);
        let keep = self.opts.retain.map_or(files.len(), |r| r as usize);
        let mut total = match self.opts.max_total_bytes {
            Some(_) => total_size(&self.opts.path),
            None => 0,
        };
        let over = |total: u64| {
            self.opts
                .max_total_bytes
                .is_some_and(|max| total + len > max)
        };
        let mut out = Vec::new();
        for (i, (_, file)) in files.iter().enumerate() {
            let beyond = files.len() - i > keep;
            let to_make_room = self.opts.retain.is_some() && over(total);
            if !beyond && !to_make_room {
                break;
            }
            let size = std::fs::metadata(file).map_or(0, |m| m.len());
            let summary = summarize(file)?;
            let name = file.file_name().map(|n| n.to_string_lossy().to_string());
            let record = json!({
                "time": timestamp_now(),
                "event": "retention",
                "deleted": name,
                "bytes": size,
                "entries": summary.as_ref().map_or(0, |s| s.entries),
                "first_seq": summary.as_ref().map(|s| s.first_seq),
                "last_seq": summary.as_ref().map(|s| s.last_seq),
                "last_mac": summary.as_ref().map(|s| s.last_mac.clone()),
            });
            let Value::Object(record) = record else {
                unreachable!()
            };
            out.push((file.clone(), record));
            total -= size.min(total);
        }
        if over(total) {
            return Err(std::io::Error::other(
                "the audit log's disk budget (--audit-max-total-mb) is used up",
            ));
        }
        Ok(out)
    }

    fn seal_due(&self, closing: bool) -> bool {
        self.key.is_some()
            && self.since_seal > 0
            && (closing
                || self.since_seal >= self.opts.checkpoint_entries
                || self.last_seal.elapsed() >= self.opts.checkpoint_every)
    }

    /// Close the epoch: a checkpoint of the chain's head to the checkpoints file, then the
    /// next epoch's key in the key file (the old one is gone from disk and memory).
    fn seal(&mut self) {
        let (Some(key), Some(key_path)) = (&self.key, &self.opts.key) else {
            return;
        };
        if let Some(cp) = &mut self.checkpoints {
            if let Err(e) = cp.write(key, &self.opts.path, self.seq - 1, &self.prev) {
                // The key stays in its epoch, so the next checkpoint covers this one's entries.
                self.status
                    .checkpoint_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, path = %cp.path.display(), "audit log: cannot write a checkpoint");
                return;
            }
        }
        let next = key.evolved();
        if let Err(e) = next.save(key_path) {
            tracing::error!(error = %e, path = %key_path.display(), "audit log: cannot save the evolved key; keeping this epoch");
            return;
        }
        self.key = Some(next);
        self.since_seal = 0;
        self.last_seal = Instant::now();
    }
}

/// A keyed log needs its key, an unkeyed one none, and the key must not be older than the
/// log's last entry (nor, at the same epoch, fail to seal it).
fn check_key(key: Option<&SealKey>, last: Option<&Sealed>, path: &Path) -> Result<(), AuditError> {
    let shown = path.display();
    let Some(last) = last else {
        return match key {
            Some(k) if k.epoch > 0 => Err(AuditError(format!(
                "the audit log {shown} is new, but the key has evolved to epoch {}: a new log \
                 needs a new key (`ward keys audit`)",
                k.epoch
            ))),
            _ => Ok(()),
        };
    };
    match (key, last.epoch) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(AuditError(format!(
            "the audit log {shown} is sealed with a key: give --audit-key"
        ))),
        (Some(_), None) => Err(AuditError(format!(
            "the audit log {shown} is not keyed: a keyed log must start anew (move it aside)"
        ))),
        (Some(k), Some(e)) if e > k.epoch => Err(AuditError(format!(
            "the audit log {shown} has entries of epoch {e}, but the key is at epoch {}: \
             not this log's key, or a key restored from a backup",
            k.epoch
        ))),
        (Some(k), Some(e)) if e == k.epoch && !last.mac_ok(Some(k)) => Err(AuditError(format!(
            "the audit key does not seal the last entry of {shown}: not this log's key"
        ))),
        _ => Ok(()),
    }
}

impl Checkpoints {
    fn open(path: &Path) -> Result<Checkpoints, AuditError> {
        let file = open_locked(path)?;
        let (size, last, _) = cut_torn_tail(&file, path)?;
        let (next, prev) = match last {
            None => (0, GENESIS.to_string()),
            Some(line) => {
                let cp = Sealed::parse(&line)
                    .map(|s| (s.seq, s.mac))
                    .ok_or_else(|| {
                        AuditError(format!(
                            "the last line of the checkpoints file {} is not a checkpoint",
                            path.display()
                        ))
                    })?;
                (cp.0 + 1, cp.1)
            }
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            file,
            size,
            next,
            prev,
        })
    }

    /// Append a sealed checkpoint of the chain's head (entry `seq`, MAC `head`) and sync it.
    fn write(&mut self, key: &SealKey, log: &Path, seq: u64, head: &str) -> std::io::Result<()> {
        // Its `seq` numbers the checkpoint; `prev` chains it to the one before.
        let body = json!({
            "time": timestamp_now(),
            "log": log.display().to_string(),
            "entries": seq + 1,
            "head_seq": seq,
            "head": head,
        });
        let Value::Object(body) = body else {
            unreachable!()
        };
        let (line, mac) = seal(body, self.next, &self.prev, Some(key));
        let bytes = format!("{line}\n");
        let written = self
            .file
            .write_all(bytes.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        // A second sink: the service's own log (journald under systemd) gets each checkpoint.
        tracing::info!(
            checkpoint = self.next,
            entries = seq + 1,
            head,
            epoch = key.epoch,
            "audit checkpoint"
        );
        self.size += bytes.len() as u64;
        self.next += 1;
        self.prev = mac;
        Ok(())
    }
}

/// Write failures injected by tests: the next `n` batches to a path fail halfway.
#[cfg(test)]
pub(super) mod faults {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAULTS: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());

    pub fn inject(path: &Path, n: u32) {
        FAULTS.lock().unwrap().push((path.to_path_buf(), n));
    }

    pub fn take(path: &Path) -> bool {
        let mut faults = FAULTS.lock().unwrap();
        match faults.iter_mut().find(|(p, n)| p == path && *n > 0) {
            Some((_, n)) => {
                *n -= 1;
                true
            }
            None => false,
        }
    }
}
