//! `ward audit verify PATH`: check an audit log's chain through its rotated files, its MACs
//! under the auditor's key, and that it reaches every checkpoint. `ward audit check PATH --seq
//! N`: whether a prompt or an output is the one entry N recorded (by its keyed hash).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ward_server::audit::{check, verify, SealKey};

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no entry was changed, removed, inserted or reordered. Exits 0 when the chain
    /// holds, 1 naming the first bad line when it does not.
    Verify {
        /// The log given to `ward serve --audit-log` (its rotated PATH.N files are read too).
        path: PathBuf,
        /// The initial audit key (the auditor's copy, as `ward keys audit` printed it): checks
        /// every entry's MAC, so a chain recomputed without it is found.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The checkpoints file (`--audit-checkpoints`): the log must reach every checkpoint
        /// with the same entries, so entries removed from its end are found.
        #[arg(long, value_name = "PATH", requires = "key")]
        checkpoints: Option<PathBuf>,
    },
    /// Check a prompt or an output against one entry's hashes (keyed in a keyed log, so only
    /// the key's holder can). Exits 0 when everything given matches, 1 when not. Prints no text.
    #[command(group = clap::ArgGroup::new("candidate").required(true).multiple(true))]
    Check {
        /// The log given to `ward serve --audit-log` (its rotated PATH.N files are read too).
        path: PathBuf,
        /// The entry's `seq`.
        #[arg(long)]
        seq: u64,
        /// The initial audit key (the auditor's copy); needed for a keyed log.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A JSON file holding the request's `messages` (or `prompt`, or `input`) value, as
        /// sent; it is hashed in canonical form (sorted keys, compact), as Ward hashed it.
        #[arg(long, value_name = "FILE", group = "candidate")]
        prompt: Option<PathBuf>,
        /// A file holding one choice's generated text, byte for byte (no newline added).
        #[arg(long, value_name = "FILE", group = "candidate")]
        output: Option<PathBuf>,
    },
}

pub fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let (path, key, checkpoints) = match a.command {
        AuditCommand::Verify {
            path,
            key,
            checkpoints,
        } => (path, key, checkpoints),
        AuditCommand::Check {
            path,
            seq,
            key,
            prompt,
            output,
        } => return check_entry(&path, seq, key, prompt, output),
    };
    let key = key
        .as_deref()
        .map(SealKey::load)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if key.as_ref().is_some_and(|k| k.epoch != 0) {
        anyhow::bail!(
            "this key has evolved to epoch {}: verify needs the initial key (the auditor's copy \
             `ward keys audit` printed), not the server's current one",
            key.as_ref().map_or(0, |k| k.epoch)
        );
    }
    // A log that is neither there nor rotated fails here, naming the path.
    let report = verify(&path, key.as_ref(), checkpoints.as_deref())
        .with_context(|| format!("reading {}", path.display()))?;
    for note in &report.notes {
        println!("note: {note}");
    }
    if let Some(line) = &report.broken {
        println!("BROKEN: {line}");
        println!("{} entries verified before it", report.entries);
        std::process::exit(1);
    }
    let epochs = report
        .epochs
        .map_or(String::new(), |(a, b)| format!(", key epochs {a}-{b}"));
    println!(
        "ok: {} entries in {} file(s), chain intact{epochs}",
        report.entries, report.files
    );
    if !report.keyed {
        println!(
            "WARNING: this log is not keyed: its chain shows accidents, but proves nothing \
             against someone who can rewrite the file, and its prompt hashes are plain sha256, \
             which anyone can compare with a guessed prompt (serve with --audit-key)"
        );
    }
    match &report.last_checkpoint {
        Some((time, entries)) => println!(
            "checkpoints: {} verified; the last ({time}) sealed {entries} entries, all present",
            report.checkpoints
        ),
        None if checkpoints.is_some() => println!("checkpoints: none written yet"),
        None => println!(
            "note: without --checkpoints, entries removed from the end of the log cannot be \
             detected"
        ),
    }
    Ok(())
}

/// `ward audit check`: compare a prompt and/or an output with entry `seq`'s hashes.
fn check_entry(
    path: &std::path::Path,
    seq: u64,
    key: Option<PathBuf>,
    prompt: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let key = key
        .as_deref()
        .map(SealKey::load)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // Errors name the file, never its content: it is patient text.
    let prompt: Option<serde_json::Value> = prompt
        .as_deref()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not JSON (line {}, column {}): give the request's `messages` or \
                     `prompt` value as sent",
                    p.display(),
                    e.line(),
                    e.column()
                )
            })
        })
        .transpose()?;
    let output = output
        .as_deref()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", p.display()))
        })
        .transpose()?;
    let c = check(path, seq, key.as_ref(), prompt.as_ref(), output.as_deref())
        .map_err(anyhow::Error::msg)?;
    let mut ok = c.seal_ok;
    match c.epoch {
        Some(e) if c.seal_ok => println!("entry {seq}: key epoch {e}, its seal checks"),
        Some(e) => println!(
            "entry {seq}: key epoch {e}; its seal does NOT check under this key (another log's \
             key, or the entry was altered): run `ward audit verify`"
        ),
        None if c.seal_ok => println!(
            "entry {seq}: unkeyed log (plain sha256 hashes, which anyone can compare); its seal \
             checks"
        ),
        None => println!("entry {seq}: unkeyed log; its seal does NOT check (altered)"),
    }
    if prompt.is_some() {
        match c.prompt {
            Some(true) => println!("prompt: match"),
            Some(false) => {
                ok = false;
                println!("prompt: NO MATCH")
            }
            None => {
                ok = false;
                println!("prompt: the entry records no prompt")
            }
        }
    }
    if let Some(found) = c.output {
        match found {
            Some(i) => println!("output: matches choice {i}"),
            None => {
                ok = false;
                println!("output: NO MATCH (the entry has {} choice(s))", c.choices);
            }
        }
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
