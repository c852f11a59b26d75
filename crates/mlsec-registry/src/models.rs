//! Registered models, versions and aliases, as MLflow's registry API has them, plus what the
//! registry adds: each version is a sealed copy of its source (re-encrypted, bound to the
//! model, version and environment), scanned and signature-checked when it is made; protected
//! aliases move only with an alias grant and onto versions that pass the policy; every alias
//! move is kept and can be rolled back.

use axum::Extension;
use axum::extract::State;
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{
    MlError, Params, Res, check_name, ok, parse_filter, registered_json, version_json, version_tags,
};
use crate::api::{logged_model_dir, run_artifact_dir};
use crate::auth::{Action, Kind, Principal, Resource};
use crate::crypt::Context;
use crate::store::{Artifact, ModelVersion, RegisteredModel, now_ms, random_id, set_tag};
use crate::tracking::{experiment_for, logged_model_for, run_for};

/// Tags under this prefix are the registry's own record of its checks; clients cannot set them.
pub const RESERVED_TAG_PREFIX: &str = "mlsec.";
/// Most files one version may hold.
pub const MAX_VERSION_FILES: usize = 10_000;

pub(crate) fn check_model(p: &Principal, action: Action, name: &str, env: Option<&str>) -> Res<()> {
    if p.allows(
        action,
        &Resource {
            kind: Kind::Model,
            name,
            env,
        },
    ) {
        Ok(())
    } else {
        let on = env
            .map(|e| format!(" in environment {e}"))
            .unwrap_or_default();
        Err(MlError::denied(format!(
            "token {} may not {} model {name:?}{on}",
            p.id,
            action.as_str()
        )))
    }
}

async fn model_for(s: &Shared, p: &Principal, action: Action, name: &str) -> Res<RegisteredModel> {
    check_model(p, action, name, None)?;
    s.store
        .registered_model(name)
        .await?
        .ok_or_else(|| MlError::not_found(format!("Registered Model with name={name} not found")))
}

pub(crate) async fn version_for(
    s: &Shared,
    p: &Principal,
    action: Action,
    name: &str,
    version: &str,
) -> Res<ModelVersion> {
    let n: i64 = version
        .parse()
        .map_err(|_| MlError::invalid(format!("version must be an integer, got {version:?}")))?;
    check_model(p, Action::Read, name, None)?;
    let v = s.store.version(name, n).await?.ok_or_else(|| {
        MlError::not_found(format!(
            "Model Version (name={name}, version={n}) not found"
        ))
    })?;
    check_model(p, action, name, Some(&v.env))?;
    Ok(v)
}

async fn version_value(s: &Shared, v: &ModelVersion) -> Res<Value> {
    let aliases: Vec<String> = s
        .store
        .aliases_of(&v.name)
        .await?
        .into_iter()
        .filter(|(_, n)| *n == v.version)
        .map(|(a, _)| a)
        .collect();
    Ok(version_json(v, &aliases))
}

/// The model as a principal may see it: only versions of environments it may read.
async fn registered_value(s: &Shared, p: &Principal, m: &RegisteredModel) -> Res<Value> {
    let versions = s.store.versions_of(&m.name).await?;
    let visible: Vec<&ModelVersion> = versions
        .iter()
        .filter(|v| check_model(p, Action::Read, &v.name, Some(&v.env)).is_ok())
        .collect();
    let mut latest = std::collections::BTreeMap::new();
    for v in &visible {
        latest.insert(v.stage.clone(), *v);
    }
    let mut latest_json = Vec::new();
    for v in latest.values() {
        latest_json.push(version_value(s, v).await?);
    }
    let aliases: Vec<(String, i64)> = s
        .store
        .aliases_of(&m.name)
        .await?
        .into_iter()
        .filter(|(_, n)| visible.iter().any(|v| v.version == *n))
        .collect();
    Ok(registered_json(m, &latest_json, &aliases))
}

fn user_tags(q: &Params) -> Res<Vec<crate::store::Tag>> {
    let tags = q.tags("tags")?;
    for t in &tags {
        check_tag_key(&t.key)?;
    }
    Ok(tags)
}

fn check_tag_key(key: &str) -> Res<()> {
    if key.starts_with(RESERVED_TAG_PREFIX) {
        return Err(MlError::invalid(format!(
            "tag {key:?}: tags starting with {RESERVED_TAG_PREFIX:?} are the registry's record of its checks"
        )));
    }
    if key.is_empty() || key.len() > 250 {
        return Err(MlError::invalid("tag keys are 1 to 250 characters"));
    }
    Ok(())
}

// ---- registered models

pub async fn create_registered_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    check_name("name", &name)?;
    check_model(&p, Action::Write, &name, None)?;
    let now = now_ms();
    let m = RegisteredModel {
        name: name.clone(),
        description: q.opt("description").unwrap_or_default(),
        created: now,
        updated: now,
        tags: user_tags(&q)?,
    };
    if !s.store.create_registered_model(&m).await? {
        return Err(MlError::exists(format!(
            "Registered Model (name={name}) already exists."
        )));
    }
    ok(json!({"registered_model": registered_value(&s, &p, &m).await?}))
}

pub async fn get_registered_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let m = model_for(&s, &p, Action::Read, &q.req("name")?).await?;
    ok(json!({"registered_model": registered_value(&s, &p, &m).await?}))
}

pub async fn update_registered_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut m = model_for(&s, &p, Action::Write, &q.req("name")?).await?;
    if let Some(d) = q.opt("description") {
        m.description = d;
    }
    s.store.update_registered_model(&m).await?;
    ok(json!({"registered_model": registered_value(&s, &p, &m).await?}))
}

pub async fn rename_registered_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let m = model_for(&s, &p, Action::Write, &q.req("name")?).await?;
    let to = q.req("new_name")?;
    check_name("new_name", &to)?;
    check_model(&p, Action::Write, &to, None)?;
    // Versions are bound to their model's name when sealed: a renamed model's versions would
    // no longer open. Renaming is refused once versions exist.
    if !s.store.versions_of(&m.name).await?.is_empty() {
        return Err(MlError::invalid(format!(
            "model {:?} has versions, which are sealed under its name; copy them into a new model instead (copy_model_version)",
            m.name
        )));
    }
    if !s.store.rename_registered_model(&m.name, &to).await? {
        return Err(MlError::exists(format!(
            "Registered Model (name={to}) already exists."
        )));
    }
    let m = model_for(&s, &p, Action::Read, &to).await?;
    ok(json!({"registered_model": registered_value(&s, &p, &m).await?}))
}

pub async fn delete_registered_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let m = model_for(&s, &p, Action::Write, &q.req("name")?).await?;
    for v in s.store.versions_of(&m.name).await? {
        check_model(&p, Action::Write, &m.name, Some(&v.env))?;
    }
    for (alias, _) in s.store.aliases_of(&m.name).await? {
        check_alias(&s, &p, &m.name, &alias)?;
    }
    s.store.delete_registered_model(&m.name).await?;
    ok(json!({}))
}

pub async fn search_registered_models(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let clauses = parse_filter(&q.opt("filter").unwrap_or_default())?;
    let max = q.int("max_results")?.unwrap_or(100).clamp(1, 1000) as usize;
    let mut out = Vec::new();
    for m in s.store.registered_models().await? {
        if check_model(&p, Action::Read, &m.name, None).is_err() {
            continue;
        }
        let hit = clauses.iter().all(|c| {
            let v = match c.field.as_str() {
                "name" => Some(m.name.clone()),
                f => f
                    .strip_prefix("tags.")
                    .and_then(|k| m.tags.iter().find(|t| t.key == k).map(|t| t.value.clone())),
            };
            c.matches(v.as_deref())
        });
        if hit {
            out.push(registered_value(&s, &p, &m).await?);
        }
        if out.len() >= max {
            break;
        }
    }
    ok(json!({"registered_models": out}))
}

pub async fn set_registered_model_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut m = model_for(&s, &p, Action::Write, &q.req("name")?).await?;
    let key = q.req("key")?;
    check_tag_key(&key)?;
    set_tag(&mut m.tags, &key, Some(&q.opt("value").unwrap_or_default()));
    s.store.update_registered_model(&m).await?;
    ok(json!({}))
}

pub async fn delete_registered_model_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut m = model_for(&s, &p, Action::Write, &q.req("name")?).await?;
    let key = q.req("key")?;
    check_tag_key(&key)?;
    set_tag(&mut m.tags, &key, None);
    s.store.update_registered_model(&m).await?;
    ok(json!({}))
}

pub async fn get_latest_versions(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let m = model_for(&s, &p, Action::Read, &q.req("name")?).await?;
    let stages = q.list("stages");
    let mut latest = std::collections::BTreeMap::new();
    for v in s.store.versions_of(&m.name).await? {
        if check_model(&p, Action::Read, &v.name, Some(&v.env)).is_ok()
            && (stages.is_empty() || stages.iter().any(|st| st.eq_ignore_ascii_case(&v.stage)))
        {
            latest.insert(v.stage.clone(), v);
        }
    }
    let mut out = Vec::new();
    for v in latest.values() {
        out.push(version_value(&s, v).await?);
    }
    ok(json!({"model_versions": out}))
}

// ---- versions

/// Where a version's files come from: an artifact folder of this registry, and the context
/// they are sealed under.
struct Source {
    dir: String,
    run_id: Option<String>,
    model_id: Option<String>,
}

async fn resolve_source(
    s: &Shared,
    p: &Principal,
    source: &str,
    model_id: Option<String>,
    run_id: Option<String>,
) -> Res<Source> {
    let outside = || {
        MlError::invalid(format!(
            "source {source:?} is not stored in this registry: log the model through this server (its mlflow-artifacts store) so that it is scanned and encrypted"
        ))
    };
    if let Some(rest) = source.strip_prefix("models:/") {
        let rest = rest.trim_end_matches('/');
        if rest.starts_with("m-") && !rest.contains('/') {
            let m = logged_model_for(s, p, Action::Read, rest).await?;
            return Ok(Source {
                dir: logged_model_dir(&m),
                run_id: run_id.or(m.run_id.clone()),
                model_id: Some(m.id),
            });
        }
        let v = if let Some((n, alias)) = rest.split_once('@') {
            let num = s.store.alias(n, alias).await?.ok_or_else(|| {
                MlError::not_found(format!("alias {alias:?} of model {n:?} not found"))
            })?;
            version_for(s, p, Action::Read, n, &num.to_string()).await?
        } else {
            let (name, version) = rest.rsplit_once('/').ok_or_else(outside)?;
            version_for(s, p, Action::Read, name, version).await?
        };
        return Ok(Source {
            dir: v.storage.clone(),
            run_id: run_id.or(v.run_id.clone()),
            model_id: model_id.or(v.model_id.clone()),
        });
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (rid, path) = rest.split_once('/').unwrap_or((rest, ""));
        let r = run_for(s, p, Action::Read, rid).await?;
        let base = run_artifact_dir(&r);
        let dir = if path.trim_matches('/').is_empty() {
            base
        } else {
            format!("{base}/{}", path.trim_matches('/'))
        };
        return Ok(Source {
            dir,
            run_id: Some(r.id),
            model_id,
        });
    }
    let path = if let Some(rest) = source.strip_prefix("mlflow-artifacts:") {
        // mlflow-artifacts:/PATH or mlflow-artifacts://HOST/PATH
        let rest = rest
            .strip_prefix("//")
            .map_or(rest, |r| r.find('/').map_or("", |i| &r[i..]));
        rest.trim_matches('/').to_owned()
    } else if let Some(i) = source.find("/api/2.0/mlflow-artifacts/artifacts/") {
        source[i + "/api/2.0/mlflow-artifacts/artifacts/".len()..]
            .trim_matches('/')
            .to_owned()
    } else {
        return Err(outside());
    };
    crate::artifacts::check_path(&path)?;
    // Reading it must be allowed like reading the artifact itself.
    crate::artifacts::authorize(s, p, Action::Read, &path).await?;
    Ok(Source {
        dir: path,
        run_id,
        model_id,
    })
}

pub async fn create_version(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let source = q.req("source")?;
    let env = s.config.policy.env.clone();
    check_model(&p, Action::Write, &name, Some(&env))?;
    model_for(&s, &p, Action::Write, &name).await?;
    // `copy_model_version` sends the source version's tags, the registry's `mlsec.*` record
    // among them: those are recomputed for the new version, never taken from the client.
    let tags: Vec<_> = q
        .tags("tags")?
        .into_iter()
        .filter(|t| !t.key.starts_with(RESERVED_TAG_PREFIX))
        .collect();
    for t in &tags {
        check_tag_key(&t.key)?;
    }
    let src = resolve_source(
        &s,
        &p,
        &source,
        q.opt("model_id").filter(|m| !m.is_empty()),
        q.opt("run_id").filter(|r| !r.is_empty()),
    )
    .await?;
    if let Some(r) = &src.run_id {
        let run = s.store.run(r).await?;
        if let Some(run) = run {
            experiment_for(&s, &p, Action::Read, &run.experiment_id).await?;
        }
    }
    let v = make_version(
        &s,
        NewVersion {
            name,
            env,
            source,
            src,
            tags,
            description: q.opt("description").unwrap_or_default(),
            policy: s.config.policy.clone(),
            datasets: None,
        },
        |_| Ok(()),
    )
    .await?;
    ok(json!({"model_version": version_value(&s, &v).await?}))
}

struct NewVersion {
    name: String,
    env: String,
    source: String,
    src: Source,
    tags: Vec<crate::store::Tag>,
    description: String,
    /// Whose checks apply (the target environment's for a promotion).
    policy: crate::config::Policy,
    /// The lineage to record: a promotion keeps its version's; `None` reads the source run's
    /// dataset inputs.
    datasets: Option<Vec<crate::store::DatasetRef>>,
}

/// Copies the source's files into a new version's own storage (sealed under its name, number
/// and environment), checks them, asks `gate` about the checks and only then makes the version
/// visible, in one transaction. On any failure the copies are deleted.
async fn make_version(
    s: &Shared,
    n: NewVersion,
    gate: impl FnOnce(&crate::store::Checks) -> Res<()>,
) -> Res<ModelVersion> {
    let NewVersion {
        name,
        env,
        source,
        src,
        tags,
        description,
        policy,
        datasets,
    } = n;
    let files = s.store.list_tree(&src.dir).await?;
    if files.is_empty() {
        return Err(MlError::invalid(format!(
            "source {source:?} holds no files in this registry"
        )));
    }
    if files.len() > MAX_VERSION_FILES {
        return Err(MlError::invalid(format!(
            "a version holds at most {MAX_VERSION_FILES} files"
        )));
    }
    let number = s.store.reserve_version(&name).await?.ok_or_else(|| {
        MlError::not_found(format!("Registered Model with name={name} not found"))
    })?;
    let storage = format!("registry/{env}/{}", random_id());
    // Lay the plaintext out in a private folder for the checks.
    let scratch = tempfile::Builder::new()
        .prefix("mlsec-registry-check-")
        .tempdir_in(&s.scratch)
        .map_err(MlError::internal)?;
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    let mut made = Vec::new();
    let result: Res<crate::store::Checks> = async {
        for f in &files {
            let rel = f.path[src.dir.len()..].trim_start_matches('/').to_owned();
            let from = Context {
                env: f.env.clone(),
                model: f.model.clone(),
                version: f.version,
                path: f.path.clone(),
            };
            let path = format!("{storage}/{rel}");
            let to = Context {
                env: env.clone(),
                model: name.clone(),
                version: number,
                path: path.clone(),
            };
            let (object, sealed) = s
                .blobs
                .copy(
                    &f.object,
                    &from,
                    &f.sha256,
                    &to,
                    Some(&scratch.path().join(&rel)),
                )
                .await
                .map_err(MlError::internal)?;
            made.push(object.clone());
            listed.push((rel, sealed.sha256.clone(), sealed.size as i64));
            rows.push(Artifact {
                path,
                object,
                size: sealed.size as i64,
                sha256: sealed.sha256,
                env: env.clone(),
                model: name.clone(),
                version: number,
            });
        }
        let dir = scratch.path().to_path_buf();
        let checks =
            tokio::task::spawn_blocking(move || crate::checks::check_dir(&dir, &listed, &policy))
                .await
                .map_err(MlError::internal)?;
        gate(&checks)?;
        Ok(checks)
    }
    .await;
    drop(scratch);
    let mut checks = match result {
        Ok(c) => c,
        Err(e) => {
            for o in made {
                let _ = s.blobs.delete(&o).await;
            }
            return Err(e);
        }
    };
    checks.datasets = match (datasets, &src.run_id) {
        (Some(d), _) => d,
        (None, Some(r)) => s
            .store
            .run(r)
            .await?
            .map(|run| crate::store::DatasetRef::from_run_inputs(&run.data.inputs))
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    let now = now_ms();
    let v = ModelVersion {
        name: name.clone(),
        version: number,
        env,
        source,
        run_id: src.run_id,
        model_id: src.model_id,
        status: "READY".into(),
        description,
        created: now,
        updated: now,
        tags,
        storage,
        stage: "None".into(),
        checks,
    };
    s.store.insert_version(&v, &rows).await?;
    s.metrics
        .versions
        .get_or_create(&crate::metrics::Made {
            env: v.env.clone(),
            scan: crate::metrics::closed(&v.checks.scan, &["clean", "findings", "error"]),
            signature: crate::metrics::closed(
                &v.checks.signature,
                &["verified", "absent", "invalid", "error"],
            ),
        })
        .inc();
    tracing::info!(model = %name, version = number, env = %v.env, scan = %v.checks.scan, signature = %v.checks.signature, "registry: version created");
    Ok(v)
}

/// Promotes a version into another environment: a new version there, copied and re-encrypted
/// under that environment's key, its checks re-run under that environment's policy (its
/// trusted keys), and refused unless they pass.
pub async fn promote(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let target = q.req("env")?;
    let Some(env) = s.config.environments.iter().find(|e| e.name == target) else {
        let known: Vec<&str> = s
            .config
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        return Err(MlError::invalid(format!(
            "no environment {target:?} (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let v = version_for(&s, &p, Action::Read, &name, &q.req("version")?).await?;
    check_model(&p, Action::Write, &name, Some(&target))?;
    if v.env == target {
        return Err(MlError::invalid(format!(
            "version {} of {name:?} is already in {target}",
            v.version
        )));
    }
    let policy = env.policy(&s.config.policy);
    if policy.require_clean_scan && v.checks.scan != "clean" {
        return Err(MlError::denied(format!(
            "version {} of {name:?} cannot be promoted to {target}: its scan is {:?} ({})",
            v.version,
            v.checks.scan,
            v.checks.findings.first().cloned().unwrap_or_default()
        )));
    }
    let require_signature = policy.require_signature;
    let t = target.clone();
    let n = v.version;
    let made = make_version(
        &s,
        NewVersion {
            name: name.clone(),
            env: target.clone(),
            source: format!("models:/{name}/{}", v.version),
            src: Source {
                dir: v.storage.clone(),
                run_id: v.run_id.clone(),
                model_id: v.model_id.clone(),
            },
            tags: v.tags.clone(),
            description: v.description.clone(),
            policy,
            datasets: Some(v.checks.datasets.clone()),
        },
        move |c| {
            if c.scan != "clean" {
                return Err(MlError::denied(format!(
                    "version {n} cannot be promoted to {t}: its scan is {:?}",
                    c.scan
                )));
            }
            if require_signature && c.signature != "verified" {
                return Err(MlError::denied(format!(
                    "version {n} cannot be promoted to {t}: signature {} ({}); {t} requires one from its trusted keys",
                    c.signature, c.signature_detail
                )));
            }
            Ok(())
        },
    )
    .await?;
    ok(json!({"model_version": version_value(&s, &made).await?}))
}

pub async fn get_version(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let v = version_for(&s, &p, Action::Read, &q.req("name")?, &q.req("version")?).await?;
    ok(json!({"model_version": version_value(&s, &v).await?}))
}

pub async fn update_version(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut v = version_for(&s, &p, Action::Write, &q.req("name")?, &q.req("version")?).await?;
    if let Some(d) = q.opt("description") {
        v.description = d;
    }
    s.store.update_version(&v).await?;
    ok(json!({"model_version": version_value(&s, &v).await?}))
}

pub async fn delete_version(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let v = version_for(&s, &p, Action::Write, &q.req("name")?, &q.req("version")?).await?;
    for (alias, n) in s.store.aliases_of(&v.name).await? {
        if n == v.version {
            check_alias(&s, &p, &v.name, &alias)?;
        }
    }
    s.store.delete_version(&v.name, v.version).await?;
    ok(json!({}))
}

pub async fn search_versions(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let clauses = parse_filter(&q.opt("filter").unwrap_or_default())?;
    let max = q.int("max_results")?.unwrap_or(10_000).clamp(1, 200_000) as usize;
    let by_name = clauses
        .iter()
        .find(|c| c.field == "name" && c.op == "=")
        .map(|c| c.value.clone());
    let versions = match &by_name {
        Some(n) => s.store.versions_of(n).await?,
        None => s.store.all_versions().await?,
    };
    let mut out = Vec::new();
    for v in versions {
        if check_model(&p, Action::Read, &v.name, Some(&v.env)).is_err() {
            continue;
        }
        let tags = version_tags(&v);
        let hit = clauses.iter().all(|c| {
            let val = match c.field.as_str() {
                "name" => Some(v.name.clone()),
                "run_id" => v.run_id.clone(),
                "source_path" | "source" => Some(v.source.clone()),
                "version_number" | "version" => Some(v.version.to_string()),
                f => f
                    .strip_prefix("tags.")
                    .and_then(|k| tags.iter().find(|t| t.key == k).map(|t| t.value.clone())),
            };
            c.matches(val.as_deref())
        });
        if hit {
            out.push(version_value(&s, &v).await?);
        }
        if out.len() >= max {
            break;
        }
    }
    out.reverse();
    ok(json!({"model_versions": out}))
}

pub async fn download_uri(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let v = version_for(&s, &p, Action::Read, &q.req("name")?, &q.req("version")?).await?;
    ok(json!({"artifact_uri": format!("mlflow-artifacts:/{}", v.storage)}))
}

pub async fn transition_stage(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut v = version_for(&s, &p, Action::Write, &q.req("name")?, &q.req("version")?).await?;
    let stage = q.req("stage")?;
    let stage = ["None", "Staging", "Production", "Archived"]
        .into_iter()
        .find(|st| st.eq_ignore_ascii_case(&stage))
        .ok_or_else(|| MlError::invalid(format!("unknown stage {stage:?}")))?;
    if stage == "Production" {
        // The legacy stage is a protected alias by another name: same gates.
        gate(&s, &p, &v, "prod")?;
    }
    v.stage = stage.into();
    s.store.update_version(&v).await?;
    if q.bool("archive_existing_versions") && stage != "None" && stage != "Archived" {
        for mut other in s.store.versions_of(&v.name).await? {
            if other.version != v.version && other.stage == stage {
                other.stage = "Archived".into();
                s.store.update_version(&other).await?;
            }
        }
    }
    ok(json!({"model_version": version_value(&s, &v).await?}))
}

pub async fn set_version_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut v = version_for(&s, &p, Action::Write, &q.req("name")?, &q.req("version")?).await?;
    let key = q.req("key")?;
    check_tag_key(&key)?;
    set_tag(&mut v.tags, &key, Some(&q.opt("value").unwrap_or_default()));
    s.store.update_version(&v).await?;
    ok(json!({}))
}

pub async fn delete_version_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut v = version_for(&s, &p, Action::Write, &q.req("name")?, &q.req("version")?).await?;
    let key = q.req("key")?;
    check_tag_key(&key)?;
    set_tag(&mut v.tags, &key, None);
    s.store.update_version(&v).await?;
    ok(json!({}))
}

// ---- aliases

fn is_protected(s: &Shared, alias: &str) -> bool {
    s.config
        .policy
        .protected_aliases
        .iter()
        .any(|a| a.eq_ignore_ascii_case(alias))
}

/// A protected alias moves only with an `alias/NAME` grant (or admin).
fn check_alias(s: &Shared, p: &Principal, model: &str, alias: &str) -> Res<()> {
    if !is_protected(s, alias) {
        return Ok(());
    }
    let r = Resource {
        kind: Kind::Alias,
        name: alias,
        env: None,
    };
    if p.allows(Action::Write, &r) || p.is_admin() {
        Ok(())
    } else {
        Err(MlError::denied(format!(
            "alias {alias:?} of model {model:?} is protected: moving it needs a write:alias/{alias} grant"
        )))
    }
}

/// What a version must pass before a protected alias may point at it.
fn gate(s: &Shared, p: &Principal, v: &ModelVersion, alias: &str) -> Res<()> {
    check_alias(s, p, &v.name, alias)?;
    if let Some(env) = s
        .config
        .environments
        .iter()
        .find(|e| e.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias)))
        && env.name != v.env
    {
        return Err(MlError::denied(format!(
            "alias {alias:?} points only at versions promoted to {} (version {} of {:?} is in {}): promote it first",
            env.name, v.version, v.name, v.env
        )));
    }
    if !is_protected(s, alias) {
        return Ok(());
    }
    let pol = &s.config.policy;
    if pol.require_clean_scan && v.checks.scan != "clean" {
        let why = v.checks.findings.first().cloned().unwrap_or_default();
        return Err(MlError::denied(format!(
            "version {} of {:?} cannot take protected alias {alias:?}: its scan is {:?} ({why})",
            v.version, v.name, v.checks.scan
        )));
    }
    if pol.require_signature && v.checks.signature != "verified" {
        return Err(MlError::denied(format!(
            "version {} of {:?} cannot take protected alias {alias:?}: signature {} ({})",
            v.version, v.name, v.checks.signature, v.checks.signature_detail
        )));
    }
    Ok(())
}

pub async fn set_alias(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let alias = q.req("alias")?;
    check_name("alias", &alias)?;
    if alias.eq_ignore_ascii_case("latest")
        || alias.starts_with('v') && alias[1..].parse::<u64>().is_ok()
    {
        return Err(MlError::invalid(format!(
            "alias {alias:?} is reserved by MLflow"
        )));
    }
    let v = version_for(&s, &p, Action::Write, &name, &q.req("version")?).await?;
    gate(&s, &p, &v, &alias)?;
    if let Some(current) = s.store.alias(&name, &alias).await?
        && let Some(cur) = s.store.version(&name, current).await?
    {
        // Moving an alias away from a version also needs write access to that version's
        // environment.
        check_model(&p, Action::Write, &name, Some(&cur.env))?;
    }
    s.store
        .set_alias(&name, &alias, Some(v.version), &p.id)
        .await?;
    ok(json!({}))
}

pub async fn delete_alias(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let alias = q.req("alias")?;
    model_for(&s, &p, Action::Write, &name).await?;
    check_alias(&s, &p, &name, &alias)?;
    let Some(current) = s.store.alias(&name, &alias).await? else {
        return Err(MlError::not_found(format!(
            "Registered model alias {alias} not found."
        )));
    };
    if let Some(cur) = s.store.version(&name, current).await? {
        check_model(&p, Action::Write, &name, Some(&cur.env))?;
    }
    s.store.set_alias(&name, &alias, None, &p.id).await?;
    ok(json!({}))
}

pub async fn get_by_alias(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let alias = q.req("alias")?;
    model_for(&s, &p, Action::Read, &name).await?;
    let n =
        s.store.alias(&name, &alias).await?.ok_or_else(|| {
            MlError::not_found(format!("Registered model alias {alias} not found."))
        })?;
    let v = version_for(&s, &p, Action::Read, &name, &n.to_string()).await?;
    ok(json!({"model_version": version_value(&s, &v).await?}))
}

pub async fn alias_history(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let alias = q.req("alias")?;
    model_for(&s, &p, Action::Read, &name).await?;
    let h = s.store.alias_history(&name, &alias).await?;
    ok(json!({"name": name, "alias": alias, "history": h}))
}

/// Undoes the alias's last move (`mlsec registry rollback MODEL@ALIAS`).
pub async fn rollback_alias(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    let alias = q.req("alias")?;
    model_for(&s, &p, Action::Write, &name).await?;
    check_alias(&s, &p, &name, &alias)?;
    let live: Vec<_> = s
        .store
        .alias_history(&name, &alias)
        .await?
        .into_iter()
        .filter(|e| !e.undone)
        .collect();
    let [.., before, _] = live.as_slice() else {
        return Err(MlError::invalid(format!(
            "alias {alias:?} of {name:?} has no earlier position to roll back to"
        )));
    };
    if let Some(target) = before.version {
        // The earlier version must still exist and still pass the gates of today's policy.
        let v = version_for(&s, &p, Action::Write, &name, &target.to_string()).await?;
        gate(&s, &p, &v, &alias)?;
    }
    let Some((from, to)) = s.store.rollback_alias(&name, &alias).await? else {
        return Err(MlError::invalid(format!(
            "alias {alias:?} of {name:?} has no earlier position to roll back to"
        )));
    };
    ok(json!({"name": name, "alias": alias, "from": from, "to": to}))
}
