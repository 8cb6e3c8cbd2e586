//! `ward audit verify PATH`: check an audit log's hash chain, through its rotated files.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

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
    },
}

pub fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let AuditCommand::Verify { path } = a.command;
    // A log that is neither there nor rotated fails here, naming the path.
    let report =
        ward_server::audit::verify(&path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(first) = &report.missing_before {
        println!("note: the chain starts in {first}; older files are not present (retention?)");
    }
    for torn in &report.torn {
        println!("torn: {torn}: an incomplete line (a write interrupted by a crash); the chain continues past it");
    }
    match report.broken {
        Some(line) => {
            println!("BROKEN: {line}");
            println!("{} entries verified before it", report.entries);
            std::process::exit(1);
        }
        None => println!("ok: {} entries, chain intact", report.entries),
    }
    Ok(())
}
