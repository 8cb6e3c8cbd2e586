//! `ward audit verify PATH`: check an audit log's chain through its rotated files, its MACs
//! under the auditor's key, and that it reaches every checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ward_server::audit::{verify, SealKey};

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
}

pub fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let AuditCommand::Verify {
        path,
        key,
        checkpoints,
    } = a.command;
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
             against someone who can rewrite the file (serve with --audit-key)"
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
