//! The audit log's files: `PATH` and its rotated `PATH.1`, `PATH.2`, … (oldest first), read
//! line by line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::seal::Sealed;

pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every file of the log: the rotated `PATH.N` files, oldest first, then `path` itself.
pub fn oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated(path).into_iter().map(|(_, p)| p).collect();
    files.push(path.to_path_buf());
    files
}

/// `PATH.N` files beside `path`, oldest (lowest N) first.
pub fn rotated(path: &Path) -> Vec<(u32, PathBuf)> {
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
            let rest = e.file_name().to_str()?.strip_prefix(&prefix)?.to_string();
            // Only plain numbers: `PATH.tmp` and the like are not rotated files.
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n = rest.parse().ok()?;
            Some((n, numbered(path, n)))
        })
        .collect();
    found.sort();
    found
}

/// Call `f(line, whole)` for each line of `path`; `whole` is false only for a last line that
/// has no newline (an interrupted write).
pub fn for_each_line(path: &Path, mut f: impl FnMut(&[u8], bool)) -> std::io::Result<()> {
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

/// Where a file's whole lines end (a torn last line starts there), and its last whole line.
pub fn tail(path: &Path) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // Read back from the end in growing windows until a line start is found.
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        (&mut f).take(len - start).read_to_end(&mut buf)?;
        // The end of the last whole line.
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok((0, None));
            }
            window *= 4;
            continue;
        };
        let begin = buf[..end].iter().rposition(|&b| b == b'\n');
        match begin {
            Some(b) => return Ok((start + end as u64 + 1, Some(buf[b + 1..end].to_vec()))),
            None if start == 0 => return Ok((end as u64 + 1, Some(buf[..end].to_vec()))),
            None => window *= 4,
        }
    }
}

/// What a file holds, for a retention record: its first and last entries and their count.
pub struct FileSummary {
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_mac: String,
    pub entries: u64,
}

pub fn summarize(path: &Path) -> std::io::Result<Option<FileSummary>> {
    let mut summary: Option<FileSummary> = None;
    for_each_line(path, |line, whole| {
        let Some(e) = Sealed::parse(line).filter(|_| whole) else {
            return;
        };
        let s = summary.get_or_insert(FileSummary {
            first_seq: e.seq,
            last_seq: e.seq,
            last_mac: String::new(),
            entries: 0,
        });
        s.last_seq = e.seq;
        s.last_mac = e.mac;
        s.entries += 1;
    })?;
    Ok(summary)
}

/// Total bytes of `path` and its rotated files.
pub fn total_size(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    size(path) + rotated(path).iter().map(|(_, p)| size(p)).sum::<u64>()
}
