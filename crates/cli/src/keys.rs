//! `ward keys new NAME`: make an API key for a calling service. The key is printed once, for
//! that service's configuration; the key file gets only its sha256.
//! `ward keys audit --out FILE`: make the audit log's sealing key.

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random key and the [[service]] entry to add to the --api-keys file.
    New {
        /// The service's name, as logs, metrics and the audit log will show it.
        name: String,
        /// Models it may use (registry names as served; "*" for any).
        #[arg(long, default_values_t = ["*".to_string()])]
        models: Vec<String>,
    },
    /// Make a key to seal the audit log (`ward serve --audit-key FILE`): 32 random bytes,
    /// written to FILE (mode 0600) and printed once for the auditor, who keeps it apart.
    Audit {
        /// Where the server's copy goes; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

pub fn keys(a: KeysArgs) -> anyhow::Result<()> {
    let (name, models) = match a.command {
        KeysCommand::New { name, models } => (name, models),
        KeysCommand::Audit { out } => return audit_key(&out),
    };
    let bytes = random32()?;
    let key = format!("ward-{}", ward_server::hex(&bytes));
    let models: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
    let entry = format!(
        "[[service]]\nname = {name:?}\nkey_sha256 = \"{}\"\nmodels = [{}]\n# requests_per_minute = 120\n# tokens_per_minute = 60000\n",
        ward_server::sha256_hex(key.as_bytes()),
        models.join(", ")
    );
    // Check the entry the way the server will read it.
    ward_server::Keys::parse(&entry).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("The key for {name} (give it to that service; it is not stored anywhere):");
    println!("{key}");
    eprintln!("\nAdd this to the --api-keys file:\n\n{entry}");
    Ok(())
}

fn random32() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

/// The audit key: the server's copy in `out` (0600, never overwriting: a lost key leaves a
/// log nobody can verify), the auditor's on stdout.
fn audit_key(out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let key = ward_server::hex(&random32()?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()?;
    eprintln!(
        "Wrote the audit key to {} for `ward serve --audit-key` (it evolves there at every \
         checkpoint).\nThe initial key, for the auditor (`ward audit verify --key`); keep it \
         apart from the server, offline:",
        out.display()
    );
    println!("{key}");
    Ok(())
}
