//! The tracking calls MLflow clients make around registering a model: experiments, runs (with
//! their params, metrics, tags, inputs and outputs, and 2.x `runs/log-model`) and 3.x logged
//! models. Access follows the experiment: `experiment/<name>` grants.

use axum::Extension;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{
    MlError, Params, Res, experiment_json, logged_model_json, ok, parse_filter, run_json,
};
use crate::auth::{Action, Kind, Principal, Resource};
use crate::store::{
    Experiment, LoggedModel, LoggedModelData, Run, RunData, Tag, now_ms, random_id, set_tag,
};

/// Most entries one `log-batch` may carry (MLflow's own limits are 1000 metrics, 100 params,
/// 100 tags).
pub const MAX_BATCH: usize = 1000;

pub(crate) fn check_experiment(p: &Principal, action: Action, e: &Experiment) -> Res<()> {
    let r = Resource {
        kind: Kind::Experiment,
        name: &e.name,
        env: None,
    };
    if p.allows(action, &r) {
        Ok(())
    } else {
        Err(MlError::denied(format!(
            "token {} may not {} experiment {:?}",
            p.id,
            action.as_str(),
            e.name
        )))
    }
}

pub(crate) async fn experiment_for(
    s: &Shared,
    p: &Principal,
    action: Action,
    id: &str,
) -> Res<Experiment> {
    let e = s
        .store
        .experiment(id)
        .await?
        .ok_or_else(|| MlError::not_found(format!("No Experiment with id={id} exists")))?;
    check_experiment(p, action, &e)?;
    Ok(e)
}

pub(crate) async fn run_for(s: &Shared, p: &Principal, action: Action, id: &str) -> Res<Run> {
    let r = s
        .store
        .run(id)
        .await?
        .ok_or_else(|| MlError::not_found(format!("Run with id={id} not found")))?;
    experiment_for(s, p, action, &r.experiment_id).await?;
    Ok(r)
}

pub(crate) async fn logged_model_for(
    s: &Shared,
    p: &Principal,
    action: Action,
    id: &str,
) -> Res<LoggedModel> {
    let m = s
        .store
        .logged_model(id)
        .await?
        .ok_or_else(|| MlError::not_found(format!("Logged model with ID '{id}' not found")))?;
    experiment_for(s, p, action, &m.experiment_id).await?;
    Ok(m)
}

/// The experiments of `ids` the principal may read (searches filter, never refuse).
async fn readable_experiments(s: &Shared, p: &Principal, ids: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        if experiment_for(s, p, Action::Read, &id).await.is_ok() {
            out.push(id);
        }
    }
    out
}

// ---- experiments

pub async fn create_experiment(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("name")?;
    if name.len() > 500 || name.chars().any(char::is_control) {
        return Err(MlError::invalid(
            "experiment names are at most 500 characters, without control characters",
        ));
    }
    if q.opt("artifact_location").is_some_and(|l| !l.is_empty()) {
        return Err(MlError::invalid(
            "artifact_location is chosen by the registry (it stores and encrypts every artifact itself)",
        ));
    }
    check_experiment(
        &p,
        Action::Write,
        &Experiment {
            name: name.clone(),
            ..Experiment::default()
        },
    )?;
    if s.store.experiment_by_name(&name).await?.is_some() {
        return Err(MlError::exists(format!(
            "Experiment '{name}' already exists."
        )));
    }
    let id = s.store.create_experiment(&name, &q.tags("tags")?).await?;
    ok(json!({"experiment_id": id}))
}

pub async fn get_experiment(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let e = experiment_for(&s, &p, Action::Read, &q.req("experiment_id")?).await?;
    ok(json!({"experiment": experiment_json(&e)}))
}

pub async fn get_experiment_by_name(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let name = q.req("experiment_name")?;
    let e = s.store.experiment_by_name(&name).await?.ok_or_else(|| {
        MlError::not_found(format!("Could not find experiment with name '{name}'"))
    })?;
    check_experiment(&p, Action::Read, &e)?;
    ok(json!({"experiment": experiment_json(&e)}))
}

pub async fn search_experiments(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let clauses = parse_filter(&q.opt("filter").unwrap_or_default())?;
    let view = q.opt("view_type").unwrap_or_else(|| "ACTIVE_ONLY".into());
    let max = q.int("max_results")?.unwrap_or(1000).clamp(1, 50_000) as usize;
    let mut out = Vec::new();
    for e in s.store.experiments().await? {
        let lifecycle_ok = match view.as_str() {
            "DELETED_ONLY" | "2" => e.lifecycle == "deleted",
            "ALL" | "3" => true,
            _ => e.lifecycle == "active",
        };
        let filter_ok = clauses.iter().all(|c| {
            let v = match c.field.as_str() {
                "name" | "attributes.name" => Some(e.name.clone()),
                f => f
                    .strip_prefix("tags.")
                    .and_then(|k| e.tags.iter().find(|t| t.key == k).map(|t| t.value.clone())),
            };
            c.matches(v.as_deref())
        });
        if lifecycle_ok && filter_ok && check_experiment(&p, Action::Read, &e).is_ok() {
            out.push(experiment_json(&e));
        }
        if out.len() >= max {
            break;
        }
    }
    ok(json!({"experiments": out}))
}

pub async fn set_experiment_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut e = experiment_for(&s, &p, Action::Write, &q.req("experiment_id")?).await?;
    let key = q.req("key")?;
    set_tag(&mut e.tags, &key, Some(&q.opt("value").unwrap_or_default()));
    s.store.update_experiment(&e).await?;
    ok(json!({}))
}

pub async fn delete_experiment(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let id = q.req("experiment_id")?;
    if id == "0" {
        return Err(MlError::invalid("the Default experiment cannot be deleted"));
    }
    let mut e = experiment_for(&s, &p, Action::Write, &id).await?;
    e.lifecycle = "deleted".into();
    s.store.update_experiment(&e).await?;
    ok(json!({}))
}

// ---- runs

pub async fn create_run(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let exp = q.opt("experiment_id").unwrap_or_else(|| "0".into());
    let e = experiment_for(&s, &p, Action::Write, &exp).await?;
    if e.lifecycle != "active" {
        return Err(MlError::invalid(format!("experiment {} is deleted", e.id)));
    }
    let tags = q.tags("tags")?;
    let name = q
        .opt("run_name")
        .filter(|n| !n.is_empty())
        .or_else(|| {
            tags.iter()
                .find(|t| t.key == "mlflow.runName")
                .map(|t| t.value.clone())
        })
        .unwrap_or_else(|| format!("run-{}", &random_id()[..8]));
    let mut data = RunData {
        tags,
        ..RunData::default()
    };
    set_tag(&mut data.tags, "mlflow.runName", Some(&name));
    let run = Run {
        id: random_id(),
        experiment_id: e.id,
        name,
        // Who made the run is the token, whatever the client claims.
        user_id: p.id.clone(),
        status: "RUNNING".into(),
        start_time: q.int("start_time")?.unwrap_or_else(now_ms),
        end_time: None,
        lifecycle: "active".into(),
        data,
    };
    s.store.insert_run(&run).await?;
    ok(json!({"run": run_json(&run)}))
}

pub async fn get_run(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let id = q
        .opt("run_id")
        .or_else(|| q.opt("run_uuid"))
        .unwrap_or_default();
    let r = run_for(&s, &p, Action::Read, &id).await?;
    ok(json!({"run": run_json(&r)}))
}

pub async fn update_run(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let id = q
        .opt("run_id")
        .or_else(|| q.opt("run_uuid"))
        .unwrap_or_default();
    let mut r = run_for(&s, &p, Action::Write, &id).await?;
    if let Some(st) = q.opt("status") {
        if !["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"].contains(&st.as_str()) {
            return Err(MlError::invalid(format!("unknown run status {st:?}")));
        }
        r.status = st;
    }
    if let Some(t) = q.int("end_time")? {
        r.end_time = Some(t);
    }
    if let Some(n) = q.opt("run_name").filter(|n| !n.is_empty()) {
        set_tag(&mut r.data.tags, "mlflow.runName", Some(&n));
        r.name = n;
    }
    s.store.update_run(&r).await?;
    ok(json!({"run_info": run_json(&r)["info"]}))
}

pub async fn delete_run(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    r.lifecycle = "deleted".into();
    s.store.update_run(&r).await?;
    ok(json!({}))
}

fn metric(v: &Value) -> Res<Value> {
    let key = v
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| MlError::invalid("a metric needs a key"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    Ok(json!({
        "key": key,
        "value": value,
        "timestamp": v.get("timestamp").cloned().unwrap_or_else(|| json!(now_ms())),
        "step": v.get("step").cloned().unwrap_or(json!(0)),
    }))
}

fn merge_metric(metrics: &mut Vec<Value>, m: Value) {
    metrics.retain(|x| x.get("key") != m.get("key"));
    metrics.push(m);
}

fn add_param(params: &mut Vec<Tag>, t: Tag) -> Res<()> {
    if let Some(old) = params.iter().find(|x| x.key == t.key) {
        if old.value != t.value {
            return Err(MlError::invalid(format!(
                "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run. Attempted logging new value '{}'.",
                t.key, old.value, t.value
            )));
        }
        return Ok(());
    }
    params.push(t);
    Ok(())
}

pub async fn log_batch(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    let metrics = q
        .value("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let params = q.tags("params")?;
    let tags = q.tags("tags")?;
    if metrics.len() + params.len() + tags.len() > MAX_BATCH {
        return Err(MlError::invalid(format!(
            "a batch holds at most {MAX_BATCH} entries"
        )));
    }
    for m in &metrics {
        merge_metric(&mut r.data.metrics, metric(m)?);
    }
    for t in params {
        add_param(&mut r.data.params, t)?;
    }
    for t in tags {
        set_tag(&mut r.data.tags, &t.key, Some(&t.value));
    }
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn log_metric(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    merge_metric(&mut r.data.metrics, metric(&Value::Object(q.0.clone()))?);
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn log_param(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    add_param(
        &mut r.data.params,
        Tag {
            key: q.req("key")?,
            value: q.opt("value").unwrap_or_default(),
        },
    )?;
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn set_run_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    set_tag(
        &mut r.data.tags,
        &q.req("key")?,
        Some(&q.opt("value").unwrap_or_default()),
    );
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn delete_run_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    set_tag(&mut r.data.tags, &q.req("key")?, None);
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn log_inputs(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    let mut inputs = if r.data.inputs.is_object() {
        r.data.inputs.clone()
    } else {
        json!({})
    };
    for key in ["datasets", "models"] {
        if let Some(Value::Array(new)) = q.value(key) {
            let key_out = if key == "datasets" {
                "dataset_inputs"
            } else {
                "model_inputs"
            };
            let list = inputs[key_out].as_array().cloned().unwrap_or_default();
            let merged: Vec<Value> = list.into_iter().chain(new.iter().cloned()).collect();
            inputs[key_out] = Value::Array(merged);
        }
    }
    r.data.inputs = inputs;
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn log_outputs(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    if let Some(Value::Array(models)) = q.value("models") {
        r.data.outputs.extend(models.iter().cloned());
    }
    s.store.update_run(&r).await?;
    ok(json!({}))
}

/// 2.x clients record each logged model's MLmodel on the run.
pub async fn log_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let mut r = run_for(&s, &p, Action::Write, &q.req("run_id")?).await?;
    let model = q.req("model_json")?;
    let v: Value =
        serde_json::from_str(&model).map_err(|e| MlError::invalid(format!("model_json: {e}")))?;
    if r.data.models.len() >= 1000 {
        return Err(MlError::invalid("a run records at most 1000 models"));
    }
    r.data.models.push(v);
    s.store.update_run(&r).await?;
    ok(json!({}))
}

pub async fn search_runs(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let ids = readable_experiments(&s, &p, q.list("experiment_ids")).await;
    let clauses = parse_filter(&q.opt("filter").unwrap_or_default())?;
    let max = q.int("max_results")?.unwrap_or(1000).clamp(1, 50_000) as usize;
    let runs: Vec<Value> = s
        .store
        .runs_of(&ids)
        .await?
        .iter()
        .filter(|r| r.lifecycle == "active")
        .filter(|r| {
            clauses.iter().all(|c| {
                let v = match c.field.as_str() {
                    "run_name" | "attributes.run_name" => Some(r.name.clone()),
                    "status" | "attributes.status" => Some(r.status.clone()),
                    "run_id" | "attributes.run_id" => Some(r.id.clone()),
                    f => f.strip_prefix("tags.").and_then(|k| {
                        r.data
                            .tags
                            .iter()
                            .find(|t| t.key == k)
                            .map(|t| t.value.clone())
                    }),
                };
                c.matches(v.as_deref())
            })
        })
        .take(max)
        .map(run_json)
        .collect();
    ok(json!({"runs": runs}))
}

// ---- logged models (MLflow 3)

pub async fn create_logged_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let exp = q.req("experiment_id")?;
    experiment_for(&s, &p, Action::Write, &exp).await?;
    let run_id = q.opt("source_run_id").filter(|r| !r.is_empty());
    if let Some(r) = &run_id {
        run_for(&s, &p, Action::Write, r).await?;
    }
    let now = now_ms();
    let m = LoggedModel {
        id: format!("m-{}", random_id()),
        experiment_id: exp,
        name: q
            .opt("name")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "model".into()),
        run_id,
        status: "LOGGED_MODEL_PENDING".into(),
        model_type: q.opt("model_type"),
        created: now,
        updated: now,
        data: LoggedModelData {
            params: q.tags("params")?,
            tags: q.tags("tags")?,
            metrics: Vec::new(),
        },
    };
    s.store.insert_logged_model(&m).await?;
    ok(json!({"model": logged_model_json(&m)}))
}

pub async fn get_logged_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Res {
    let m = logged_model_for(&s, &p, Action::Read, &id).await?;
    ok(json!({"model": logged_model_json(&m)}))
}

pub async fn finalize_logged_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Params,
) -> Res {
    let mut m = logged_model_for(&s, &p, Action::Write, &id).await?;
    let status = q.req("status")?;
    let status = match status.as_str() {
        "LOGGED_MODEL_READY" | "2" => "LOGGED_MODEL_READY",
        "LOGGED_MODEL_UPLOAD_FAILED" | "3" => "LOGGED_MODEL_UPLOAD_FAILED",
        "LOGGED_MODEL_PENDING" | "1" => "LOGGED_MODEL_PENDING",
        other => {
            return Err(MlError::invalid(format!(
                "unknown logged model status {other:?}"
            )));
        }
    };
    m.status = status.into();
    s.store.update_logged_model(&m).await?;
    ok(json!({"model": logged_model_json(&m)}))
}

pub async fn delete_logged_model(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Res {
    let m = logged_model_for(&s, &p, Action::Write, &id).await?;
    s.store.delete_logged_model(&m.id).await?;
    ok(json!({}))
}

pub async fn set_logged_model_tags(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Params,
) -> Res {
    let mut m = logged_model_for(&s, &p, Action::Write, &id).await?;
    for t in q.tags("tags")? {
        set_tag(&mut m.data.tags, &t.key, Some(&t.value));
    }
    s.store.update_logged_model(&m).await?;
    ok(json!({}))
}

pub async fn delete_logged_model_tag(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((id, key)): Path<(String, String)>,
) -> Res {
    let mut m = logged_model_for(&s, &p, Action::Write, &id).await?;
    set_tag(&mut m.data.tags, &key, None);
    s.store.update_logged_model(&m).await?;
    ok(json!({}))
}

pub async fn log_logged_model_params(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Params,
) -> Res {
    let mut m = logged_model_for(&s, &p, Action::Write, &id).await?;
    for t in q.tags("params")? {
        set_tag(&mut m.data.params, &t.key, Some(&t.value));
    }
    s.store.update_logged_model(&m).await?;
    ok(json!({}))
}

pub async fn search_logged_models(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Params,
) -> Res {
    let ids = readable_experiments(&s, &p, q.list("experiment_ids")).await;
    let clauses = parse_filter(&q.opt("filter").unwrap_or_default())?;
    let max = q.int("max_results")?.unwrap_or(1000).clamp(1, 50_000) as usize;
    let models: Vec<Value> = s
        .store
        .logged_models_of(&ids)
        .await?
        .iter()
        .filter(|m| {
            clauses.iter().all(|c| {
                let v = match c.field.as_str() {
                    "name" => Some(m.name.clone()),
                    "model_id" => Some(m.id.clone()),
                    "source_run_id" => m.run_id.clone(),
                    f => f.strip_prefix("tags.").and_then(|k| {
                        m.data
                            .tags
                            .iter()
                            .find(|t| t.key == k)
                            .map(|t| t.value.clone())
                    }),
                };
                c.matches(v.as_deref())
            })
        })
        .take(max)
        .map(logged_model_json)
        .collect();
    ok(json!({"models": models}))
}
