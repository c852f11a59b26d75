//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`): upload, download, list and
//! delete, encrypted at rest. Paths are checked before anything else (no `..`, no empty or
//! dot segments, no backslashes or control characters), and every path has an owner whose
//! permission decides: `<experiment>/<run>/artifacts/...` and
//! `<experiment>/models/<logged model>/artifacts/...` belong to the experiment;
//! `registry/<env>/<id>/...` belongs to a model version and is read-only (a version's files
//! never change after it is made).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::IntoResponse;
use futures_util::TryStreamExt;
use serde_json::json;

use crate::Shared;
use crate::api::{MlError, Res, ok, parse_query};
use crate::auth::{Action, Principal};
use crate::crypt::Context;
use crate::store::Artifact;
use crate::tracking::{experiment_for, logged_model_for, run_for};

/// Longest artifact path.
pub const MAX_PATH: usize = 1024;

pub fn check_path(path: &str) -> Res<()> {
    if path.len() > MAX_PATH {
        return Err(MlError::invalid(format!(
            "artifact path longer than {MAX_PATH} bytes"
        )));
    }
    if path.is_empty() {
        return Ok(());
    }
    for seg in path.split('/') {
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.contains('\\')
            || seg.chars().any(char::is_control)
            || seg.len() > 255
        {
            return Err(MlError::invalid(format!(
                "Invalid path {path:?}: empty, '.' or '..' segments, backslashes and control characters are refused"
            )));
        }
    }
    Ok(())
}

/// Checks `action` on the owner of `path`.
pub async fn authorize(s: &Shared, p: &Principal, action: Action, path: &str) -> Res<()> {
    let segs: Vec<&str> = path.split('/').collect();
    match segs.as_slice() {
        [] | [""] => {
            if action == Action::Read {
                Ok(())
            } else {
                Err(MlError::denied("the artifact root cannot be written"))
            }
        }
        ["registry", rest @ ..] => {
            if action != Action::Read {
                return Err(MlError::denied(format!(
                    "{path}: model version files are read-only (made by the registry when the version is created)"
                )));
            }
            match rest {
                // The folders above versions list every model: administrators only.
                [] | [_] if p.is_admin() => Ok(()),
                [] | [_] => Err(MlError::denied(format!(
                    "{path}: listing every version needs admin"
                ))),
                [env, id, ..] => {
                    let storage = format!("registry/{env}/{id}");
                    let v = s.store.version_by_storage(&storage).await?.ok_or_else(|| {
                        MlError::not_found(format!("{path}: no such model version"))
                    })?;
                    crate::models::check_model(p, Action::Read, &v.name, Some(&v.env))
                }
            }
        }
        [exp, rest @ ..] => {
            let e = experiment_for(s, p, action, exp).await?;
            if action == Action::Read {
                return Ok(());
            }
            // Writes go to a run's or a logged model's artifact folder, nowhere else.
            match rest {
                ["models", id, "artifacts", _, ..] => {
                    let m = logged_model_for(s, p, action, id).await?;
                    if m.experiment_id != e.id {
                        return Err(MlError::invalid(format!(
                            "{path}: logged model {id} is not in experiment {}",
                            e.id
                        )));
                    }
                    Ok(())
                }
                [run, "artifacts", _, ..] => {
                    let r = run_for(s, p, action, run).await?;
                    if r.experiment_id != e.id {
                        return Err(MlError::invalid(format!(
                            "{path}: run {run} is not in experiment {}",
                            e.id
                        )));
                    }
                    Ok(())
                }
                _ => Err(MlError::invalid(format!(
                    "{path}: artifacts are written under <experiment>/<run>/artifacts/ or <experiment>/models/<model>/artifacts/"
                ))),
            }
        }
    }
}

fn context_of(a: &Artifact) -> Context {
    Context {
        env: a.env.clone(),
        model: a.model.clone(),
        version: a.version,
        path: a.path.clone(),
    }
}

pub async fn upload(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(path): Path<String>,
    req: Request,
) -> Res {
    let path = path.trim_end_matches('/').to_owned();
    check_path(&path)?;
    authorize(&s, &p, Action::Write, &path).await?;
    if s.store
        .list_dir(&path)
        .await
        .map(|(f, d)| !f.is_empty() || !d.is_empty())?
    {
        return Err(MlError::invalid(format!("{path} is a directory")));
    }
    let ctx = Context {
        env: String::new(),
        model: String::new(),
        version: 0,
        path: path.clone(),
    };
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(|e| e.to_string());
    let (object, sealed) = s
        .blobs
        .put_stream(&ctx, Box::pin(body))
        .await
        .map_err(|e| match e {
            crate::blobs::BlobError::Body(m) => {
                MlError::invalid(format!("upload of {path} cut short: {m}"))
            }
            crate::blobs::BlobError::TooLarge => MlError::invalid(format!("{path}: {e}")),
            e => MlError::internal(e),
        })?;
    let row = Artifact {
        path: path.clone(),
        object: object.clone(),
        size: sealed.size as i64,
        sha256: sealed.sha256,
        env: String::new(),
        model: String::new(),
        version: 0,
    };
    match s.store.put_artifact(&row).await {
        Ok(Some(old)) => {
            let _ = s.blobs.delete(&old).await;
        }
        Ok(None) => {}
        Err(e) => {
            let _ = s.blobs.delete(&object).await;
            return Err(e.into());
        }
    }
    ok(json!({}))
}

pub async fn download(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(path): Path<String>,
) -> Res {
    check_path(&path)?;
    authorize(&s, &p, Action::Read, &path).await?;
    let a = s
        .store
        .artifact(&path)
        .await?
        .ok_or_else(|| MlError::not_found(format!("{path}: no such artifact")))?;
    let stream = s
        .blobs
        .open_stream(&a.object, &context_of(&a), &a.sha256)
        .await
        .map_err(MlError::internal)?;
    let stream = stream.inspect_err(move |e| {
        tracing::error!(path = %a.path, error = %e, "registry: artifact failed to decrypt while streaming");
    });
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(r)
}

pub async fn list(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    req: Request,
) -> Res {
    let q = parse_query(req.uri().query().unwrap_or(""));
    let path = q
        .get("path")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim_matches('/')
        .to_owned();
    check_path(&path)?;
    authorize(&s, &p, Action::Read, &path).await?;
    let (files, dirs) = s.store.list_dir(&path).await?;
    let mut out = Vec::new();
    for d in dirs {
        let full = if path.is_empty() {
            d.clone()
        } else {
            format!("{path}/{d}")
        };
        // Only what the principal may read is listed.
        if authorize(&s, &p, Action::Read, &full).await.is_ok() {
            out.push(json!({"path": d, "is_dir": true}));
        }
    }
    for f in files {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_owned();
        out.push(json!({"path": name, "is_dir": false, "file_size": f.size}));
    }
    debug_assert!(
        out.iter()
            .all(|f| !f["path"].as_str().unwrap_or("").contains('/'))
    );
    ok(json!({"files": out}))
}

pub async fn delete(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(path): Path<String>,
) -> Res {
    let path = path.trim_end_matches('/').to_owned();
    check_path(&path)?;
    authorize(&s, &p, Action::Write, &path).await?;
    let objects = match s.store.delete_artifact(&path).await? {
        Some(object) => vec![object],
        None => s.store.delete_artifacts_under(&path).await?,
    };
    for o in objects {
        let _ = s.blobs.delete(&o).await;
    }
    ok(json!({}))
}
