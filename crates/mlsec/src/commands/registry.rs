//! `mlsec registry`: serve the MLflow-compatible registry, manage its tokens, roll an alias back.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use mlsec_registry::auth::{Scope, new_token, parse_ttl};
use mlsec_registry::config::Config;
use mlsec_registry::store::now_ms;

use crate::EXIT_ERROR;
use crate::args::{Format, RegistryArgs, RegistryCommand, RegistryTokenCommand, SeverityArg};

fn load(args: &RegistryArgs) -> anyhow::Result<Config> {
    let c = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    c.validate()?;
    Ok(c)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(args: &RegistryArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        RegistryCommand::Serve => {
            super::gateway::init_logs(args.log_format);
            let config = load(args)?;
            runtime()?.block_on(mlsec_registry::server::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Token { command } => token(args, command),
        RegistryCommand::Rollback { target, url } => rollback(target, url),
        RegistryCommand::Promote { target, to, url } => promote(target, to, url),
        RegistryCommand::Rewrap { rotate, prune } => rewrap(args, *rotate, *prune),
        RegistryCommand::Backup { out } => {
            let config = load(args)?;
            let rt = runtime()?;
            let registry = rt.block_on(mlsec_registry::Registry::open_with(config, false))?;
            let m = rt.block_on(mlsec_registry::backup::backup(&registry, out))?;
            println!(
                "{}: {} rows, {} objects ({} bytes, wrapped under {}). The key-encryption key is not in the backup: keep it apart.",
                out.display(),
                m.tables.values().sum::<usize>(),
                m.objects,
                m.bytes,
                m.keys.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Restore { from } => {
            let config = load(args)?;
            let rt = runtime()?;
            let registry = rt.block_on(mlsec_registry::Registry::open_with(config, false))?;
            let m = rt.block_on(mlsec_registry::backup::restore(&registry, from))?;
            println!(
                "restored {} rows and {} objects from {}",
                m.tables.values().sum::<usize>(),
                m.objects,
                from.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Inventory {
            paths,
            gateway,
            format,
            output,
            fail_on,
        } => inventory(
            args,
            paths,
            gateway.as_deref(),
            *format,
            output.as_deref(),
            *fail_on,
        ),
    }
}

fn inventory(
    args: &RegistryArgs,
    paths: &[std::path::PathBuf],
    gateway: Option<&std::path::Path>,
    format: Format,
    output: Option<&std::path::Path>,
    fail_on: SeverityArg,
) -> anyhow::Result<ExitCode> {
    use mlsec_diagnostics::render;
    use mlsec_registry::inventory::{Endpoint, endpoints_from_manifests, targets_in};
    let config = load(args)?;
    let rt = runtime()?;
    let registry = rt.block_on(mlsec_registry::Registry::open_with(config, false))?;
    let (mut endpoints, errors) = endpoints_from_manifests(paths);
    if let Some(g) = gateway {
        let gw = mlsec_gateway::config::Config::load(g).map_err(|e| anyhow::anyhow!("{e}"))?;
        let env = mlsec_scan_deploy::k8s::environment(&g.display().to_string(), None)
            .unwrap_or(mlsec_scan_deploy::repo::Env::Prod);
        for m in &gw.models {
            let targets = m.registry.as_deref().map(targets_in).unwrap_or_default();
            if m.registry.is_some() && targets.is_empty() {
                bail!(
                    "{}: model {:?}: registry = {:?} is not models:/NAME@ALIAS or models:/NAME/N",
                    g.display(),
                    m.name,
                    m.registry
                );
            }
            if targets.is_empty() {
                continue;
            }
            endpoints.push(Endpoint {
                location: mlsec_diagnostics::Location::file(g.display().to_string()),
                title: format!("gateway model {}", m.name),
                env: Some(env),
                owner: m.owner.clone().filter(|o| !o.trim().is_empty()),
                targets,
            });
        }
    }
    let mut report = rt.block_on(mlsec_registry::inventory::inventory(
        &registry.store,
        &registry.config.policy,
        &endpoints,
    ))?;
    report.errors = errors;
    let mut buf = Vec::new();
    match format {
        Format::Text => render::text::render(&report, &mut buf, false)?,
        Format::Json => render::json::render(&report, &mut buf)?,
        Format::Sarif => render::sarif::render(&report, &mut buf)?,
    }
    match output {
        Some(p) => fs_err::write(p, &buf)?,
        None => std::io::stdout().lock().write_all(&buf)?,
    }
    let _ = render::text::errors(&report, &mut std::io::stderr().lock(), false);
    eprintln!(
        "{} endpoint(s) serving registry models, {} finding(s)",
        endpoints.len(),
        report.findings.len()
    );
    if !report.errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let fail = super::scan::severity(fail_on)
        .is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if fail {
        ExitCode::from(crate::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

fn token(args: &RegistryArgs, command: &RegistryTokenCommand) -> anyhow::Result<ExitCode> {
    let config = load(args)?;
    let rt = runtime()?;
    let registry = rt.block_on(mlsec_registry::Registry::open_with(config, false))?;
    match command {
        RegistryTokenCommand::Create {
            name,
            scopes,
            expires,
        } => {
            let parsed: Vec<Scope> = scopes
                .iter()
                .map(|s| s.parse::<Scope>())
                .collect::<Result<_, _>>()?;
            if parsed.len() > mlsec_registry::auth::MAX_SCOPES {
                bail!(
                    "at most {} scopes per token",
                    mlsec_registry::auth::MAX_SCOPES
                );
            }
            let expires_at = match expires {
                Some(e) => Some(
                    now_ms()
                        + parse_ttl(e).with_context(|| {
                            format!(
                                "--expires {e:?}: expected a number and s, m, h or d (e.g. 30d)"
                            )
                        })?,
                ),
                None => None,
            };
            let (row, token) = new_token(name, &parsed, expires_at);
            rt.block_on(registry.store.insert_token(&row))?;
            println!("{token}");
            eprintln!(
                "created token {} ({name}; {}){}. This is the only time it is shown: store it now.",
                row.id,
                row.scopes.join(" "),
                expires_at.map_or_else(String::new, |e| format!(
                    ", expires {}",
                    mlsec_server_time(e)
                ))
            );
        }
        RegistryTokenCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<14} {:<8} {:<22} {:<40} NAME",
                "ID", "STATE", "EXPIRES", "SCOPES"
            )?;
            for t in rt.block_on(registry.store.tokens())? {
                let state = if t.revoked {
                    "revoked"
                } else if t.expires.is_some_and(|e| e <= now_ms()) {
                    "expired"
                } else {
                    "active"
                };
                writeln!(
                    out,
                    "{:<14} {:<8} {:<22} {:<40} {}",
                    t.id,
                    state,
                    t.expires
                        .map_or_else(|| "never".to_owned(), mlsec_server_time),
                    t.scopes.join(" "),
                    t.name
                )?;
            }
        }
        RegistryTokenCommand::Revoke { id } => {
            if !rt.block_on(registry.store.revoke_token(id))? {
                bail!("no token with id {id:?}");
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rewrap(args: &RegistryArgs, rotate: bool, prune: bool) -> anyhow::Result<ExitCode> {
    let config = load(args)?;
    let rt = runtime()?;
    let key_file = config.key_file();
    let transit = config.storage.transit.is_some();
    if rotate && !transit {
        mlsec_registry::crypt::Kek::rotate_key_file(&key_file)?;
        eprintln!(
            "{}: new current key; the old ones stay below it until --prune",
            key_file.display()
        );
    }
    let registry = rt.block_on(mlsec_registry::Registry::open_with(config, false))?;
    if rotate
        && transit
        && let mlsec_registry::crypt::Kek::Transit(t) = registry.blobs.kek()
    {
        rt.block_on(t.rotate())?;
        eprintln!("transit key {} rotated", t.key);
    }
    let done = rt.block_on(registry.rewrap())?;
    println!(
        "rewrapped {} object(s) under {}; {} already were; {} changed meanwhile (already current)",
        done.rewrapped,
        registry.blobs.kek().id(),
        done.current,
        done.raced
    );
    if prune {
        if transit {
            bail!(
                "--prune applies to the local key file; in OpenBao, raise the transit key's min_decryption_version"
            );
        }
        let n = mlsec_registry::crypt::Kek::prune_key_file(&key_file)?;
        eprintln!("{}: dropped {n} old key(s)", key_file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn mlsec_server_time(ms: i64) -> String {
    mlsec_gateway::audit::rfc3339((ms / 1000).max(0) as u64)
}

/// A call to the running registry with MLSEC_REGISTRY_TOKEN. `Ok(None)` when it refused
/// (said on stderr), so the caller exits 2.
fn server_call(
    url: &str,
    path: &str,
    body: &serde_json::Value,
    what: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Ok(token) = std::env::var("MLSEC_REGISTRY_TOKEN") else {
        bail!("MLSEC_REGISTRY_TOKEN is not set (a registry token allowed to do this: {what})");
    };
    let (status, v) = runtime()?
        .block_on(mlsec_registry::server::call(
            url, &token, "POST", path, body,
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    if status != 200 {
        let msg = v
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| v.to_string(), str::to_owned);
        eprintln!("mlsec: error: {what} refused ({status}): {msg}");
        return Ok(None);
    }
    Ok(Some(v))
}

fn promote(target: &str, to: &str, url: &str) -> anyhow::Result<ExitCode> {
    let Some((name, version)) = target.rsplit_once('/') else {
        bail!("{target:?}: expected MODEL/VERSION");
    };
    let body = serde_json::json!({"name": name, "version": version, "env": to});
    let what = format!("promotion of {target} to {to}");
    let Some(v) = server_call(url, "/api/2.0/mlsec/model-versions/promote", &body, &what)? else {
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let mv = &v["model_version"];
    println!(
        "{target} -> {name}/{} in {to}",
        mv["version"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

fn rollback(target: &str, url: &str) -> anyhow::Result<ExitCode> {
    let Some((name, alias)) = target.rsplit_once('@') else {
        bail!("{target:?}: expected MODEL@ALIAS");
    };
    let body = serde_json::json!({"name": name, "alias": alias});
    let what = format!("rollback of {target}");
    let Some(v) = server_call(url, "/api/2.0/mlsec/aliases/rollback", &body, &what)? else {
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let show = |x: &serde_json::Value| {
        x.as_i64()
            .map_or_else(|| "(none)".to_owned(), |n| format!("version {n}"))
    };
    println!("{name}@{alias}: {} -> {}", show(&v["from"]), show(&v["to"]));
    Ok(ExitCode::SUCCESS)
}
