//! `ward audit check`: whether a prompt (or an output) is the one an entry recorded. The
//! entry's hashes are keyed in a keyed log, so only the key's holder can tell: the auditor's
//! initial key is carried forward to the entry's epoch, and the candidate hashed there as the
//! server hashed it. Nothing of the candidate is printed or kept.

use std::path::Path;

use serde_json::Value;

use super::files::{for_each_line, oldest_first};
use super::seal::{canonical_json, content_fields, content_hash, SealKey, Sealed};
use super::verify::MAX_EPOCH_STEP;

/// What [`check`] found for one entry.
#[derive(Debug)]
pub struct Checked {
    /// The entry's key epoch (`None`: an unkeyed log, whose hashes are plain sha256).
    pub epoch: Option<u64>,
    /// Whether the entry's own MAC checks under the key (or its sha256, unkeyed): that the
    /// hashes compared are the ones Ward wrote. The whole chain is `ward audit verify`'s.
    pub seal_ok: bool,
    /// The prompt given: `Some(true)` if the entry's prompt hash is its hash; `None` if no
    /// prompt was given or the entry records none.
    pub prompt: Option<bool>,
    /// The output given: the choice whose hash matches (`Some(None)`: none does).
    pub output: Option<Option<usize>>,
    /// The entry's number of recorded outputs.
    pub choices: usize,
}

/// Check `prompt` (the request's `messages`, `prompt` or `input` value; its canonical JSON is
/// hashed) and `output` (one choice's text, byte for byte) against the entry numbered `seq` in
/// the log `path` (its rotated files are read too). `key` is the auditor's initial key (needed
/// for a keyed log, refused for an unkeyed one). An error says why no comparison was made.
pub fn check(
    path: &Path,
    seq: u64,
    key: Option<&SealKey>,
    prompt: Option<&Value>,
    output: Option<&str>,
) -> Result<Checked, String> {
    let entry = find(path, seq)?.ok_or_else(|| {
        format!(
            "no entry with seq {seq} in {} or its rotated files",
            path.display()
        )
    })?;
    let key = match (entry.epoch, key) {
        (Some(_), None) => {
            return Err(
                "this log is keyed: its hashes can be checked only with --key (the \
                        initial key)"
                    .into(),
            )
        }
        (None, Some(_)) => {
            return Err(
                "this log is not keyed: its hashes are plain sha256; leave out --key".into(),
            )
        }
        (None, None) => None,
        (Some(epoch), Some(k)) => {
            if k.epoch > epoch {
                return Err(format!(
                    "the key is at epoch {}, after the entry's ({epoch}): give the initial key \
                     (the auditor's copy), not the server's current one",
                    k.epoch
                ));
            }
            if epoch - k.epoch > MAX_EPOCH_STEP {
                return Err(format!(
                    "the entry's key epoch {epoch} is implausibly far ahead of the key's (forged)"
                ));
            }
            k.at_epoch(epoch)
        }
    };
    let seal_ok = entry.mac_ok(key.as_ref());
    let (prompt_field, output_field) = content_fields(key.is_some());
    let recorded = entry.fields.get(prompt_field).and_then(Value::as_str);
    let prompt = match (prompt, recorded) {
        (Some(p), Some(r)) => Some(content_hash(key.as_ref(), canonical_json(p).as_bytes()) == r),
        _ => None,
    };
    let outputs: Vec<&str> = entry
        .fields
        .get(output_field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let output = output.map(|o| {
        let h = content_hash(key.as_ref(), o.as_bytes());
        outputs.iter().position(|r| *r == h)
    });
    Ok(Checked {
        epoch: entry.epoch,
        seal_ok,
        prompt,
        output,
        choices: outputs.len(),
    })
}

/// The sealed entry numbered `seq`, from the log's files oldest first.
fn find(path: &Path, seq: u64) -> Result<Option<Sealed>, String> {
    let mut found = None;
    for file in oldest_first(path).iter().filter(|f| f.exists()) {
        for_each_line(file, |line, whole| {
            if found.is_some() || !whole {
                return;
            }
            if let Some(e) = Sealed::parse(line).filter(|e| e.seq == seq) {
                found = Some(e);
            }
        })
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}
