//! `ward audit verify`: read the log's files oldest first and check every line. A line that
//! is not a sealed entry, a MAC that does not match (under the auditor's key, derived forward
//! to each entry's epoch), a `seq` or `prev` that does not follow, a rotated file missing in
//! the middle or holding no entry, or a start of the chain that no retention entry explains,
//! is a break. With the checkpoints file, the log must also reach every checkpoint with the
//! same entry there, so entries removed from its end are found too.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::files::{for_each_line, rotated};
use super::seal::{SealKey, Sealed, GENESIS};

/// Most key epochs one entry or checkpoint may carry the key forward. Each epoch costs an HMAC
/// to derive, so an epoch forged far ahead (10^15) would keep the verifier busy for ever before
/// the MAC could be found wrong. An epoch lasts at least a second (`--audit-checkpoint-secs`,
/// 60 by default), so this is half a year of epochs at the fastest and 32 years at the default,
/// derived in a few seconds.
pub(super) const MAX_EPOCH_STEP: u64 = 1 << 24;

/// The key carried forward to `epoch`: an error naming `what` if that is backwards or
/// implausibly far ahead.
fn key_at(key: &SealKey, epoch: u64, what: &str) -> Result<SealKey, String> {
    if epoch.saturating_sub(key.epoch) > MAX_EPOCH_STEP {
        return Err(format!(
            "its key epoch {epoch} is more than {MAX_EPOCH_STEP} past the key's {} at the {what} \
             before it: no log gets that far (forged)",
            key.epoch
        ));
    }
    key.at_epoch(epoch)
        .ok_or_else(|| format!("its key epoch is earlier than the {what} before it"))
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Entries checked, and the files they were in.
    pub entries: u64,
    pub files: usize,
    /// Whether the entries are keyed (MACs under the key), and their epochs.
    pub keyed: bool,
    pub epochs: Option<(u64, u64)>,
    /// Checkpoints checked, and the last one's time and entry count.
    pub checkpoints_given: bool,
    pub checkpoints: u64,
    pub last_checkpoint: Option<(String, u64)>,
    /// Things an auditor should know that are not breaks: a torn last line after a crash, a
    /// recovery, files deleted by retention, a time the log could not be written.
    pub notes: Vec<String>,
    /// The first break found, with where and why.
    pub broken: Option<String>,
}

/// One checkpoint: which entry it sealed.
struct Checkpoint {
    number: u64,
    time: String,
    entries: u64,
    head_seq: u64,
    head: String,
    epoch: u64,
}

/// Where the chain stands while reading.
#[derive(Default)]
struct Chain {
    /// The next entry's `seq` and `prev`; `None` before the first entry of a log whose
    /// oldest files were deleted.
    expected: Option<(u64, String)>,
    /// The key at the epoch reached so far.
    key: Option<SealKey>,
    /// The first entry, when the chain does not start at the genesis: where, seq, prev.
    start: Option<(String, u64, String)>,
    /// Retention entries: the deleted file's last seq and MAC.
    retained: Vec<(u64, String)>,
    /// Entries sealed by checkpoints: seq → (checkpoint, head MAC).
    sealed: HashMap<u64, (u64, String)>,
    first_seq: Option<u64>,
    last: Option<(u64, Option<u64>)>,
}

/// Check the chain through `path`'s rotated files (oldest first) and `path` itself, MACs under
/// `key` (the initial key, as `ward keys audit` made it), and against `checkpoints` if given.
pub fn verify(
    path: &Path,
    key: Option<&SealKey>,
    checkpoints: Option<&Path>,
) -> std::io::Result<Verified> {
    let mut v = Verified::default();
    let older = rotated(path);
    if older.is_empty() {
        std::fs::metadata(path)?;
    }
    let mut chain = Chain {
        key: key.cloned(),
        ..Chain::default()
    };
    v.checkpoints_given = checkpoints.is_some();
    let cps = match checkpoints {
        Some(p) => match read_checkpoints(p, key, &mut v)? {
            Ok(cps) => cps,
            Err(why) => {
                v.broken = Some(why);
                return Ok(v);
            }
        },
        None => Vec::new(),
    };
    for cp in &cps {
        chain
            .sealed
            .insert(cp.head_seq, (cp.number, cp.head.clone()));
    }
    if !path.exists() {
        v.broken = Some(format!(
            "{} is missing: the newest file was removed",
            path.display()
        ));
        return Ok(v);
    }
    for pair in older.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            v.broken = Some(format!(
                "{}.{} is missing: a rotated file between two others was removed",
                path.display(),
                pair[0].0 + 1
            ));
            return Ok(v);
        }
    }
    if older.first().is_none_or(|(n, _)| *n == 1) {
        chain.expected = Some((0, GENESIS.to_string()));
    }
    let mut files: Vec<&Path> = older.iter().map(|(_, p)| p.as_path()).collect();
    files.push(path);
    v.files = files.len();
    for (i, file) in files.iter().enumerate() {
        let newest = i + 1 == files.len();
        let (mut number, before) = (0u64, v.entries);
        for_each_line(file, |line, whole| {
            number += 1;
            if v.broken.is_some() {
                return;
            }
            let here = format!("{}:{number}", file.display());
            if !whole {
                if newest {
                    v.notes.push(format!(
                        "{here}: a torn last line (a write cut off by a crash); it is not part \
                         of the chain, and the next start removes it"
                    ));
                } else {
                    v.broken = Some(format!("{here}: a torn line at the end of a rotated file"));
                }
                return;
            }
            if let Err(why) = check_line(line, &here, &mut chain, &mut v) {
                v.broken = Some(format!("{here}: {why}"));
            }
        })?;
        if v.broken.is_some() {
            return Ok(v);
        }
        if !newest && v.entries == before {
            v.broken = Some(format!(
                "{} holds no entry: rotation never leaves an empty file (planted?)",
                file.display()
            ));
            return Ok(v);
        }
    }
    finish(&mut v, &chain, &cps);
    Ok(v)
}

/// One line: a sealed entry whose MAC is right and which follows the one before.
fn check_line(line: &[u8], here: &str, chain: &mut Chain, v: &mut Verified) -> Result<(), String> {
    let e = Sealed::parse(line)
        .ok_or("not a chain entry (a blank line, garbage, or JSON without a valid seal)")?;
    if v.entries == 0 {
        v.keyed = e.epoch.is_some();
    } else if v.keyed != e.epoch.is_some() {
        return Err("keyed and unkeyed entries are mixed".into());
    }
    // Epochs advance one at a time, each holding at least one entry, from 0 at the chain's
    // start: entries re-sealed with a later key (a stolen current one) cannot pass for older.
    if let Some(epoch) = e.epoch {
        let genesis = matches!(&chain.expected, Some((0, _))) && v.entries == 0;
        if genesis && epoch != 0 {
            return Err(format!(
                "the chain's first entry is of key epoch {epoch}, not 0: re-sealed with a later key"
            ));
        }
        if let Some((_, Some(before))) = chain.last {
            if epoch > before + 1 {
                return Err(format!(
                    "its key epoch jumps from {before} to {epoch}: entries were re-sealed with a \
                     later key"
                ));
            }
        }
    }
    match (&mut chain.key, e.epoch) {
        (Some(k), Some(epoch)) => {
            *k = key_at(k, epoch, "entry")?;
            if !e.mac_ok(Some(k)) {
                return Err(
                    "its MAC does not match: the entry was changed, or sealed with \
                            another key"
                        .into(),
                );
            }
        }
        (Some(_), None) => {
            return Err(
                "not sealed with the key: the chain was recomputed without it, or \
                        this log is not keyed"
                    .into(),
            )
        }
        (None, Some(_)) => {
            return Err(
                "the log is sealed with a key: verify it with --key (the auditor's \
                        copy of the initial key)"
                    .into(),
            )
        }
        (None, None) => {
            if !e.mac_ok(None) {
                return Err("its hash does not match: the entry was changed".into());
            }
        }
    }
    match &chain.expected {
        Some((seq, _)) if e.seq != *seq => {
            return Err(format!(
                "entry {} where entry {seq} should be: entries were removed, inserted or \
                 reordered",
                e.seq
            ))
        }
        Some((_, prev)) if e.prev != *prev => {
            return Err(
                "its 'prev' is not the MAC of the entry before it: an entry was \
                        changed, removed or inserted there"
                    .into(),
            )
        }
        Some(_) => {}
        None => chain.start = Some((here.to_string(), e.seq, e.prev.clone())),
    }
    if let Some((k, head)) = chain.sealed.get(&e.seq) {
        if *head != e.mac {
            return Err(format!(
                "entry {} is not the one checkpoint {k} sealed: it was changed",
                e.seq
            ));
        }
    }
    let field = |name: &str| e.fields.get(name).cloned().unwrap_or(Value::Null);
    match e.event() {
        "retention" => {
            if let (Some(seq), Some(mac)) = (field("last_seq").as_u64(), field("last_mac").as_str())
            {
                chain.retained.push((seq, mac.to_string()));
            }
        }
        "open" if field("torn_bytes_removed").as_u64().is_some() => v.notes.push(format!(
            "{here}: at this start the server removed a torn line of {} bytes left by a crash",
            field("torn_bytes_removed")
        )),
        "audit_resumed" => v.notes.push(format!(
            "{here}: the log could not be written from {} until this entry; {} entries were not \
             written (requests were refused meanwhile)",
            field("failed_since"),
            field("unwritten")
        )),
        _ => {}
    }
    chain.expected = Some((e.seq + 1, e.mac));
    chain.first_seq.get_or_insert(e.seq);
    chain.last = Some((e.seq, e.epoch));
    if let Some(epoch) = e.epoch {
        let first = v.epochs.map_or(epoch, |(f, _)| f);
        v.epochs = Some((first, epoch));
    }
    v.entries += 1;
    Ok(())
}

/// After the last line: the chain's start must be the genesis or a recorded deletion, and it
/// must reach every checkpoint.
fn finish(v: &mut Verified, chain: &Chain, cps: &[Checkpoint]) {
    let Some((last_seq, last_epoch)) = chain.last else {
        v.broken = Some("the log holds no entry (every start writes one): it was emptied".into());
        return;
    };
    if let Some((here, seq, prev)) = &chain.start {
        let recorded = chain
            .retained
            .iter()
            .any(|(s, m)| s + 1 == *seq && m == prev);
        if !recorded {
            v.broken = Some(format!(
                "{here}: the chain starts here (entry {seq}) and no retention entry records \
                 deleting the files before it: they were removed outside Ward"
            ));
            return;
        }
        v.notes.push(format!(
            "the chain starts at {here} (entry {seq}): the files before it were deleted by \
             retention, as the chain records"
        ));
    }
    // Checkpoints of entries in files deleted by retention were checked as far as they can be.
    if let Some(cp) = cps.iter().find(|cp| cp.head_seq > last_seq) {
        v.broken = Some(format!(
            "the log ends at entry {last_seq}, but checkpoint {} ({}) sealed {} entries: \
             entries were removed from its end",
            cp.number, cp.time, cp.entries
        ));
        return;
    }
    // Every epoch but the current one ends with a checkpoint (the key evolves only after its
    // checkpoint is written), so a log past the last checkpoint's next epoch lost some.
    let Some(epoch) = last_epoch.filter(|_| v.checkpoints_given) else {
        return;
    };
    let sealed_to = cps.last().map_or(0, |cp| cp.epoch + 1);
    if epoch > sealed_to {
        v.broken = Some(format!(
            "the log's last entry is of key epoch {epoch}, but the checkpoints end at epoch {}: \
             later checkpoints are missing (an older or emptied checkpoints file?)",
            cps.last().map_or("none".into(), |cp| cp.epoch.to_string())
        ));
    }
}

/// The checkpoints file: each line sealed under the key of its epoch, numbered and chained.
fn read_checkpoints(
    path: &Path,
    key: Option<&SealKey>,
    v: &mut Verified,
) -> std::io::Result<Result<Vec<Checkpoint>, String>> {
    let Some(key) = key else {
        return Ok(Err("checkpoints can be checked only with --key".into()));
    };
    let mut key = key.clone();
    let mut cps: Vec<Checkpoint> = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut broken = None;
    let mut number = 0u64;
    for_each_line(path, |line, whole| {
        number += 1;
        if broken.is_some() {
            return;
        }
        let here = format!("{}:{number}", path.display());
        if !whole {
            v.notes
                .push(format!("{here}: a torn last checkpoint (a crash); ignored"));
            return;
        }
        let cp = Sealed::parse(line).and_then(|e| {
            let epoch = e.epoch?;
            let f = |n: &str| e.fields.get(n).cloned();
            Some((
                Checkpoint {
                    number: e.seq,
                    time: f("time")?.as_str()?.to_string(),
                    entries: f("entries")?.as_u64()?,
                    head_seq: f("head_seq")?.as_u64()?,
                    head: f("head")?.as_str()?.to_string(),
                    epoch,
                },
                e,
            ))
        });
        let Some((cp, e)) = cp else {
            broken = Some(format!("{here}: not a checkpoint"));
            return;
        };
        let why = match key_at(&key, cp.epoch, "checkpoint") {
            Err(why) => Some(why),
            Ok(k) => {
                key = k;
                if !e.mac_ok(Some(&key)) {
                    Some("its MAC does not match: changed, or sealed with another key".into())
                } else if cp.number != cps.len() as u64 || e.prev != prev {
                    Some("it does not follow the checkpoint before it (removed, inserted or reordered)".into())
                } else if cps.last().is_some_and(|p| p.head_seq > cp.head_seq) {
                    Some("it seals fewer entries than the checkpoint before it".into())
                } else {
                    None
                }
            }
        };
        if let Some(why) = why {
            broken = Some(format!("{here}: {why}"));
            return;
        }
        prev = e.mac;
        cps.push(cp);
    })?;
    if let Some(b) = broken {
        return Ok(Err(b));
    }
    v.checkpoints = cps.len() as u64;
    v.last_checkpoint = cps.last().map(|c| (c.time.clone(), c.entries));
    Ok(Ok(cps))
}
