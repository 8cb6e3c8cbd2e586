//! Settings for `ward serve` from a TOML file (`--config FILE` or `WARD_CONFIG`) and from
//! `WARD_*` environment variables, besides the command line. Each serve flag `--some-flag` is
//! also `WARD_SOME_FLAG` and `some-flag` (or `some_flag`) in the file; the command line wins
//! over the environment, which wins over the file.
//!
//! The file is applied by setting the environment variables it names that are not set already,
//! before the command line is parsed, so clap's own `env` handling gives the order above and the
//! same validation and messages for every source. Unknown keys are refused: a misspelt setting
//! must not silently fall back to its default.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::CommandFactory;

/// Apply the config file named on the command line or in `WARD_CONFIG`, if any. Must run before
/// any other thread starts (it sets environment variables).
pub fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(());
    }
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_string).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_args.or_else(|| std::env::var("WARD_CONFIG").ok()) else {
        return Ok(());
    };
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    for (name, value) in settings(&text).with_context(|| format!("in {}", path.display()))? {
        if std::env::var_os(&name).is_none() {
            std::env::set_var(name, value);
        }
    }
    Ok(())
}

/// The environment variables a config file's text stands for.
fn settings(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
    let cli = crate::Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("the serve command exists");
    let mut out = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config");
        let Some(arg) = arg else {
            bail!("unknown setting {key:?} (the settings are `ward serve`'s flags without the dashes)");
        };
        let env = arg
            .get_env()
            .and_then(|e| e.to_str())
            .expect("every serve flag has a WARD_ variable")
            .to_string();
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A repeatable flag (`model = ["a", "b"]`): its variable takes a comma-separated list.
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                .iter()
                .filter_map(toml::Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => bail!("setting {key:?} must be a string, number, true/false or a list of strings"),
        };
        out.push((env, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serve_flag_has_a_ward_variable() {
        let cli = crate::Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let wanted = format!("WARD_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(wanted.as_str()),
                "--{long}"
            );
        }
    }

    #[test]
    fn file_keys_become_variables_and_unknown_ones_are_refused() {
        let got =
            settings("port = 9000\napi_keys = \"/etc/ward/keys.toml\"\nstrict-models = true\n")
                .unwrap();
        assert!(got.contains(&("WARD_PORT".into(), "9000".into())));
        assert!(got.contains(&("WARD_API_KEYS".into(), "/etc/ward/keys.toml".into())));
        assert!(got.contains(&("WARD_STRICT_MODELS".into(), "true".into())));
        let err = settings("prot = 9000\n").unwrap_err().to_string();
        assert!(err.contains("unknown setting \"prot\""), "{err}");
        assert!(settings("port = [1]\n").is_err());
    }
}
