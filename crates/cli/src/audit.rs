//! `ward audit verify PATH`: check an audit log's hash chain, through its rotated files.

use std::path::PathBuf;

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
    anyhow::ensure!(
        path.exists() || has_rotated(&path),
        "{} does not exist",
        path.display()
    );
    let report = ward_server::audit::verify(&path)?;
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

fn has_rotated(path: &std::path::Path) -> bool {
    let mut first = path.as_os_str().to_owned();
    first.push(".1");
    PathBuf::from(first).exists()
}
