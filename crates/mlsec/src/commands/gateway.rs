//! `mlsec gateway`: run the gateway, check its config, manage keys, verify the audit log.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use mlsec_gateway::config::Config;
use mlsec_gateway::keys::KeyFile;

use crate::args::{AuditCommand, GatewayArgs, GatewayCommand, KeysCommand, LogFormat};
use crate::{EXIT_ERROR, EXIT_FINDINGS};

pub fn run(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        None | Some(GatewayCommand::Run) => serve(args),
        Some(GatewayCommand::CheckConfig) => check_config(args),
        Some(GatewayCommand::Keys { command }) => keys(args, command),
        Some(GatewayCommand::Audit { command }) => audit(command),
    }
}

fn audit(command: &AuditCommand) -> anyhow::Result<ExitCode> {
    use mlsec_gateway::audit::{self, AuditError};
    match command {
        AuditCommand::Keygen { out } => {
            let (pem, public) = audit::generate_checkpoint_key()?;
            let mut f = std::fs::OpenOptions::new();
            f.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
            f.open(out)
                .and_then(|mut file| file.write_all(pem.as_bytes()))
                .with_context(|| format!("{}: could not write the key", out.display()))?;
            let public_path = std::path::PathBuf::from(format!("{}.pub", out.display()));
            std::fs::write(&public_path, format!("{public}\n"))
                .with_context(|| format!("{}: could not write", public_path.display()))?;
            println!("{}", public_path.display());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            file,
            checkpoint,
            public_key,
        } => {
            let result = match (checkpoint, public_key) {
                (Some(cp), Some(key)) => {
                    let cp_value = audit::load_checkpoint(cp)?;
                    let key_bytes = audit::load_public_key(key)?;
                    audit::verify_checkpoint(file, &cp_value, &key_bytes).map(|r| {
                        format!(
                            "{}: {} records, chain intact; the checkpoint of {} covers {} (present and unchanged), {} written since",
                            file.display(),
                            r.log.records,
                            cp_value.ts,
                            r.covered,
                            r.after
                        )
                    })
                }
                _ => audit::verify(file).map(|v| {
                    if v.records == 0 {
                        String::new()
                    } else {
                        format!(
                            "{}: {} records, chain intact, last hash {} (lines cut off the end are only detected against a checkpoint: --checkpoint)",
                            file.display(),
                            v.records,
                            v.last_hash
                        )
                    }
                }),
            };
            match result {
                Ok(msg) if msg.is_empty() => {
                    println!(
                        "{}: no records: an empty log proves nothing (compare it with a checkpoint)",
                        file.display()
                    );
                    Ok(ExitCode::from(EXIT_FINDINGS))
                }
                Ok(msg) => {
                    println!("{msg}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (AuditError::Broken { .. } | AuditError::Truncated { .. })) => {
                    println!("{e}");
                    Ok(ExitCode::from(EXIT_FINDINGS))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

pub(super) fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MLSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: redirected logs stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn serve(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    // The main thread runs the admin listener, signals, health probes and the Redis
    // connection; the gateway starts its own worker threads for the public listener.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(mlsec_gateway::server::run(&args.config))
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    match Config::load(&args.config) {
        Ok(c) => {
            println!(
                "{}: valid ({} models, {} policies, {} templates)",
                args.config.display(),
                c.models.len(),
                c.policies.len(),
                c.templates.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let mut err = std::io::stderr().lock();
            for e in &errors.0 {
                writeln!(err, "error: {e}")?;
            }
            writeln!(err, "{} error(s)", errors.0.len())?;
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn keys(args: &GatewayArgs, command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(path) = config.auth.keys_file.as_ref().map(|p| config.resolve(p)) else {
        bail!(
            "{}: auth.keys_file is not set, so there is nowhere to keep keys",
            args.config.display()
        );
    };
    let mut file = KeyFile::load(&path)?;
    match command {
        KeysCommand::Create { name, policy } => {
            if !config.policies.contains_key(policy) {
                bail!(
                    "{}: no policy named {policy:?} (have: {})",
                    args.config.display(),
                    config
                        .policies
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (rec, token) = file.create(name, policy, now);
            file.save(&path)?;
            println!("{token}");
            eprintln!(
                "created key {} ({name}, policy {policy}) in {}. This is the only time the key is shown: store it now. A running gateway picks it up on reload (SIGHUP or POST /admin/reload).",
                rec.id,
                path.display()
            );
        }
        KeysCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<14} {:<8} {:<16} {:<20} NAME",
                "ID", "STATE", "POLICY", "CREATED"
            )?;
            for k in &file.keys {
                writeln!(
                    out,
                    "{:<14} {:<8} {:<16} {:<20} {}",
                    k.id,
                    if k.revoked { "revoked" } else { "active" },
                    k.policy,
                    mlsec_gateway::audit::rfc3339(k.created),
                    k.name
                )?;
            }
        }
        KeysCommand::Revoke { id } => {
            file.revoke(id)?;
            file.save(&path)?;
            eprintln!(
                "revoked key {id}. A running gateway refuses it after its next reload (SIGHUP or POST /admin/reload)."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
