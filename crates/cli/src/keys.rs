//! `ward keys new NAME`: make an API key for a calling service. The key is printed once, for
//! that service's configuration; the key file gets only its sha256.

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
}

pub fn keys(a: KeysArgs) -> anyhow::Result<()> {
    let KeysCommand::New { name, models } = a.command;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
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
