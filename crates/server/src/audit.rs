//! The audit log (`--audit-log PATH`): one JSON line per request, append-only and hash-chained.
//! Each line's `prev` is the sha256 of the line before it (64 zeros for the very first), so
//! editing, removing or reordering lines breaks the chain at that point, and
//! [`verify`] names the first line where it breaks.
//!
//! Lines are written by one thread, in order, each with a single `write` and `fdatasync`ed
//! before the writer sleeps, so a crash (even `kill -9`) leaves at most a torn last line. On
//! the next start the torn fragment is closed with a newline and the chain continues from the
//! last whole line; `verify` reports the fragment without calling the chain broken. When the
//! file passes its size limit it is renamed `PATH.N` (N counting up from 1, oldest first) and
//! a new `PATH` continues the same chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::hex;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct AuditLog {
    tx: Mutex<Option<Sender<Map<String, Value>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Whether entries may carry prompt and output text (`--audit-include-text`).
    pub include_text: bool,
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    prev: String,
}

impl AuditLog {
    /// Open (or create) the log at `path`, continuing its chain; files grow to about
    /// `max_bytes` before they are rotated.
    pub fn open(path: &Path, max_bytes: u64, include_text: bool) -> std::io::Result<AuditLog> {
        let (prev, size) = recover(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: max_bytes.max(4096),
            prev,
        };
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("ward-audit".into())
            .spawn(move || writer.run(rx))?;
        Ok(AuditLog {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            include_text,
        })
    }

    /// Queue an entry; the writer adds `prev` and writes it.
    pub fn append(&self, entry: Map<String, Value>) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(entry);
        }
    }

    /// Write everything queued and stop the writer; later entries are dropped.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

impl Writer {
    fn run(mut self, rx: Receiver<Map<String, Value>>) {
        while let Ok(entry) = rx.recv() {
            self.write(entry);
            // Everything already queued goes out before the one sync.
            while let Ok(entry) = rx.try_recv() {
                self.write(entry);
            }
            if let Err(e) = self.file.sync_data() {
                tracing::error!(error = %e, "audit log: sync failed");
            }
        }
    }

    fn write(&mut self, mut entry: Map<String, Value>) {
        entry.insert("prev".into(), Value::String(self.prev.clone()));
        let line = Value::Object(entry).to_string();
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
            if let Err(e) = self.rotate() {
                tracing::error!(error = %e, "audit log: rotation failed; writing on");
            }
        }
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        match self.file.write_all(&bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                self.prev = hex(&Sha256::digest(&bytes[..bytes.len() - 1]));
            }
            // A full disk must be noticed by the operators: this is the one place it shows.
            Err(e) => tracing::error!(error = %e, "audit log: write failed; entry lost"),
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let next = rotated(&self.path).last().map_or(1, |(n, _)| n + 1);
        std::fs::rename(&self.path, numbered(&self.path, next))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Where the chain stands in an existing log: the hash of its last whole line (from the newest
/// rotated file if `path` is empty or missing) and the file's size. A torn last line is closed
/// with a newline so the next entry starts a line of its own.
fn recover(path: &Path) -> std::io::Result<(String, u64)> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(_) => 0,
    };
    let mut prev = if size > 0 {
        last_whole_line(path)?
    } else {
        None
    };
    // The chain goes on from the newest rotated file only when this one holds no entry yet.
    if prev.is_none() {
        if let Some((_, older)) = rotated(path).last() {
            prev = last_whole_line(older)?;
        }
    }
    let prev = prev.unwrap_or_else(|| GENESIS.into());
    if size > 0 && !ends_with_newline(path)? {
        OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(b"\n")?;
        tracing::warn!(path = %path.display(), "audit log: closed a torn last line left by a crash");
        return Ok((prev, size + 1));
    }
    Ok((prev, size))
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The hash of the last newline-terminated line that is a chain entry.
fn last_whole_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut last = None;
    for_each_line(path, |line, whole| {
        if whole && parse_entry(line).is_some() {
            last = Some(hex(&Sha256::digest(line)));
        }
    })?;
    Ok(last)
}

fn for_each_line(path: &Path, mut f: impl FnMut(&[u8], bool)) -> std::io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let whole = line.last() == Some(&b'\n');
        if whole {
            line.pop();
        }
        f(&line, whole);
    }
}

/// An entry's `prev`, if the line is one.
fn parse_entry(line: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(line).ok()?;
    Some(value.get("prev")?.as_str()?.to_string())
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// `PATH.N` files beside `path`, oldest (lowest N) first.
fn rotated(path: &Path) -> Vec<(u32, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            Some((n, numbered(path, n)))
        })
        .collect();
    found.sort();
    found
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Chain entries checked.
    pub entries: u64,
    /// Torn fragments (interrupted writes), as `file:line`.
    pub torn: Vec<String>,
    /// Rotated files missing before the oldest one present (removed by retention).
    pub missing_before: Option<String>,
    /// The first line where the chain breaks, with why.
    pub broken: Option<String>,
}

/// Check the chain through `path`'s rotated files (oldest first) and `path` itself.
pub fn verify(path: &Path) -> std::io::Result<Verified> {
    let mut files: Vec<(u32, PathBuf)> = rotated(path);
    let mut report = Verified::default();
    // The oldest file starts the chain only if it is the first one ever written.
    let mut expected = match files.first() {
        Some((n, p)) if *n > 1 => {
            report.missing_before = Some(p.display().to_string());
            None
        }
        _ => Some(GENESIS.to_string()),
    };
    if path.exists() || files.is_empty() {
        files.push((0, path.to_path_buf()));
    }
    for (_, file) in &files {
        let mut number = 0u64;
        for_each_line(file, |line, _whole| {
            number += 1;
            if report.broken.is_some() {
                return;
            }
            let here = format!("{}:{number}", file.display());
            match parse_entry(line) {
                None => report.torn.push(here),
                Some(prev) => {
                    if expected.as_ref().is_some_and(|e| *e != prev) {
                        report.broken = Some(format!(
                            "{here}: its 'prev' is not the hash of the entry before it \
                             (an entry was changed, removed or inserted there)"
                        ));
                        return;
                    }
                    report.entries += 1;
                    expected = Some(hex(&Sha256::digest(line)));
                }
            }
        })?;
        if report.broken.is_some() {
            break;
        }
    }
    Ok(report)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-30T04:38:09.123Z`).
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    timestamp(now.as_secs(), now.subsec_millis())
}

fn timestamp(secs: u64, millis: u32) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(i: u64) -> Map<String, Value> {
        match json!({"request_id": format!("r{i}"), "status": 200}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn write(path: &Path, range: std::ops::Range<u64>, max_bytes: u64) {
        let log = AuditLog::open(path, max_bytes, false).unwrap();
        for i in range {
            log.append(entry(i));
        }
        log.close();
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(timestamp(1_795_919_889, 123), "2026-11-29T02:38:09.123Z");
    }

    #[test]
    fn chain_survives_restarts_and_names_the_first_edited_line() {
        let dir = tempdir();
        let path = dir.join("audit.log");
        write(&path, 0..3, 1 << 20);
        write(&path, 3..5, 1 << 20);
        let report = verify(&path).unwrap();
        assert_eq!((report.entries, report.broken.as_deref()), (5, None));

        let mut text = lines(&path);
        text[2] = text[2].replace("\"r2\"", "\"rX\"");
        std::fs::write(&path, text.join("\n") + "\n").unwrap();
        let broken = verify(&path).unwrap().broken.unwrap();
        assert!(broken.contains("audit.log:4:"), "{broken}");
    }

    #[test]
    fn a_removed_line_breaks_the_chain() {
        let dir = tempdir();
        let path = dir.join("audit.log");
        write(&path, 0..4, 1 << 20);
        let mut text = lines(&path);
        text.remove(1);
        std::fs::write(&path, text.join("\n") + "\n").unwrap();
        assert!(verify(&path)
            .unwrap()
            .broken
            .unwrap()
            .contains("audit.log:2:"));
    }

    #[test]
    fn a_torn_last_line_is_reported_and_the_next_start_continues_after_it() {
        let dir = tempdir();
        let path = dir.join("audit.log");
        write(&path, 0..2, 1 << 20);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"request_id\":\"r2\",\"sta").unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.torn.len(), 1);
        assert!(report.broken.is_none());

        write(&path, 3..5, 1 << 20);
        let report = verify(&path).unwrap();
        assert_eq!((report.entries, report.torn.len()), (4, 1));
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(lines(&path).len(), 5);
    }

    #[test]
    fn rotation_keeps_one_chain_across_files() {
        let dir = tempdir();
        let path = dir.join("audit.log");
        write(&path, 0..40, 4096);
        write(&path, 40..80, 4096);
        let files = rotated(&path);
        assert!(files.len() >= 2, "{files:?}");
        let report = verify(&path).unwrap();
        assert_eq!((report.entries, report.broken.as_deref()), (80, None));
        // Retention removed the oldest file: the rest still verifies, and says so.
        std::fs::remove_file(&files[0].1).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.broken.is_none() && report.missing_before.is_some());
        // But the first file losing its head is a break.
        std::fs::remove_file(&files[1].1).unwrap();
        write(&dir.join("b.log"), 0..3, 1 << 20);
        let b = dir.join("b.log");
        let text = lines(&b);
        std::fs::write(&b, text[1..].join("\n") + "\n").unwrap();
        assert!(verify(&b).unwrap().broken.unwrap().contains("b.log:1:"));
    }

    fn tempdir() -> PathBuf {
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
}
