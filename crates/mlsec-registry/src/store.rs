//! Metadata: experiments, runs, logged models, registered models, versions, aliases and their
//! history, artifacts and tokens. One SQL layer over SQLite (the embedded default) and
//! PostgreSQL, through sqlx's `Any` driver: portable SQL only (TEXT and BIGINT columns,
//! `$n` placeholders in order, `ON CONFLICT`), ids made here rather than by the database.
//!
//! A version becomes visible in one transaction with all of its artifact rows, so a crash
//! during an upload or a registration leaves no partial version (objects written before the
//! crash are unreferenced and never listed).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use sqlx::Error as DbError;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, lifecycle TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL, tags TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, name TEXT NOT NULL, user_id TEXT NOT NULL, status TEXT NOT NULL, start_time BIGINT NOT NULL, end_time BIGINT, lifecycle TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS logged_models (id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, name TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL, model_type TEXT, created BIGINT NOT NULL, updated BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS registered_models (name TEXT PRIMARY KEY, description TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL, tags TEXT NOT NULL, next_version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS model_versions (name TEXT NOT NULL, version BIGINT NOT NULL, env TEXT NOT NULL, source TEXT NOT NULL, run_id TEXT, model_id TEXT, status TEXT NOT NULL, description TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL, tags TEXT NOT NULL, storage TEXT NOT NULL, stage TEXT NOT NULL, checks TEXT NOT NULL, PRIMARY KEY (name, version))",
    "CREATE TABLE IF NOT EXISTS retired_versions (name TEXT NOT NULL, version BIGINT NOT NULL, storage TEXT NOT NULL, checks TEXT NOT NULL, at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS aliases (name TEXT NOT NULL, alias TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (name, alias))",
    "CREATE TABLE IF NOT EXISTS alias_history (name TEXT NOT NULL, alias TEXT NOT NULL, seq BIGINT NOT NULL, version BIGINT, at BIGINT NOT NULL, principal TEXT NOT NULL, undone BIGINT NOT NULL, PRIMARY KEY (name, alias, seq))",
    "CREATE TABLE IF NOT EXISTS artifacts (path TEXT PRIMARY KEY, dir TEXT NOT NULL, object TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, env TEXT NOT NULL, model TEXT NOT NULL, version BIGINT NOT NULL, created BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS artifacts_dir ON artifacts (dir)",
    "CREATE TABLE IF NOT EXISTS artifact_dirs (parent TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (parent, name))",
    "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, scopes TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT, revoked BIGINT NOT NULL)",
];

/// A table's name and columns (name, whether BIGINT) as the schema declares them.
pub fn table_columns(stmt: &str) -> Option<(&str, Vec<(&str, bool)>)> {
    let rest = stmt.strip_prefix("CREATE TABLE IF NOT EXISTS ")?;
    let (name, cols) = rest.split_once(" (")?;
    let cols = cols.strip_suffix(')')?;
    let mut out = Vec::new();
    for part in cols.split(", ") {
        let mut words = part.split_whitespace();
        let (Some(col), Some(ty)) = (words.next(), words.next()) else {
            continue;
        };
        if col == "PRIMARY" {
            continue;
        }
        out.push((col, ty == "BIGINT"));
    }
    Some((name, out))
}

/// Every table of the schema with its columns, in creation order.
pub fn tables() -> Vec<(&'static str, Vec<(&'static str, bool)>)> {
    SCHEMA.iter().filter_map(|s| table_columns(s)).collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 128 random bits as 32 hex characters.
pub fn random_id() -> String {
    use rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    mlsec_server::keys::hex(&b)
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// PostgreSQL rather than SQLite.
    pub postgres: bool,
}

/// A key/value tag as MLflow sends and returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub lifecycle: String,
    pub created: i64,
    pub updated: i64,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunData {
    #[serde(default)]
    pub params: Vec<Tag>,
    #[serde(default)]
    pub metrics: Vec<Value>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub inputs: Value,
    #[serde(default)]
    pub outputs: Vec<Value>,
    /// 2.x `runs/log-model` entries (the MLmodel as JSON).
    #[serde(default)]
    pub models: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Run {
    pub id: String,
    pub experiment_id: String,
    pub name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub lifecycle: String,
    pub data: RunData,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LoggedModelData {
    #[serde(default)]
    pub params: Vec<Tag>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub metrics: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct LoggedModel {
    pub id: String,
    pub experiment_id: String,
    pub name: String,
    pub run_id: Option<String>,
    pub status: String,
    pub model_type: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub data: LoggedModelData,
}

#[derive(Debug, Clone, Default)]
pub struct RegisteredModel {
    pub name: String,
    pub description: String,
    pub created: i64,
    pub updated: i64,
    pub tags: Vec<Tag>,
}

/// What the registry checked when the version was made (scan and signature), recorded with it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Checks {
    /// `clean`, `findings` or `error`.
    pub scan: String,
    /// The worst severity found, if any.
    #[serde(default)]
    pub worst: Option<String>,
    #[serde(default)]
    pub findings: Vec<String>,
    /// `verified`, `absent`, `invalid` or `error`.
    pub signature: String,
    #[serde(default)]
    pub signature_detail: String,
    /// Hex SHA-256 over the sorted (path, sha256) list of the version's files.
    pub digest: String,
    pub files: u64,
    pub bytes: u64,
    /// The datasets the source run logged as inputs (lineage), at creation.
    #[serde(default)]
    pub datasets: Vec<DatasetRef>,
}

/// One dataset a version was trained or evaluated on, as its run logged it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct DatasetRef {
    pub name: String,
    /// MLflow's digest of the dataset.
    pub digest: String,
    pub source: String,
    /// `training`, `evaluation`, ... (the input's `mlflow.data.context` tag).
    #[serde(default)]
    pub context: String,
    /// The content fingerprint of `mlsec data audit`, from the input's `mlsec.fingerprint` tag.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Datasets recorded per version at most.
pub const MAX_VERSION_DATASETS: usize = 16;
/// Characters kept of each dataset field.
pub const MAX_DATASET_FIELD: usize = 256;

impl DatasetRef {
    /// The dataset inputs of a run's `inputs` (as `runs/log-inputs` stored them): at most
    /// [`MAX_VERSION_DATASETS`], each field cut to [`MAX_DATASET_FIELD`] characters.
    pub fn from_run_inputs(inputs: &Value) -> Vec<DatasetRef> {
        let cut = |v: &Value| -> String {
            v.as_str()
                .unwrap_or_default()
                .chars()
                .take(MAX_DATASET_FIELD)
                .collect()
        };
        let tag = |input: &Value, key: &str| -> Option<String> {
            input["tags"]
                .as_array()?
                .iter()
                .find(|t| t["key"] == key)
                .map(|t| cut(&t["value"]))
        };
        inputs["dataset_inputs"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|i| i["dataset"].is_object())
                    .take(MAX_VERSION_DATASETS)
                    .map(|i| DatasetRef {
                        name: cut(&i["dataset"]["name"]),
                        digest: cut(&i["dataset"]["digest"]),
                        source: cut(&i["dataset"]["source"]),
                        context: tag(i, "mlflow.data.context").unwrap_or_default(),
                        fingerprint: tag(i, "mlsec.fingerprint")
                            .filter(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit())),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub env: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub status: String,
    pub description: String,
    pub created: i64,
    pub updated: i64,
    pub tags: Vec<Tag>,
    /// The artifact prefix the version's own copy lives under.
    pub storage: String,
    pub stage: String,
    pub checks: Checks,
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: String,
    pub object: String,
    pub size: i64,
    pub sha256: String,
    pub env: String,
    pub model: String,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub salt: String,
    pub hash: String,
    pub scopes: Vec<String>,
    pub created: i64,
    pub expires: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasEvent {
    pub seq: i64,
    pub version: Option<i64>,
    pub at: i64,
    pub principal: String,
    pub undone: bool,
}

fn tags_json(tags: &[Tag]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

fn parse_json<T: for<'a> Deserialize<'a> + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

/// Sets `key` in `tags` (replacing), or removes it with `None`.
pub fn set_tag(tags: &mut Vec<Tag>, key: &str, value: Option<&str>) {
    tags.retain(|t| t.key != key);
    if let Some(v) = value {
        tags.push(Tag {
            key: key.into(),
            value: v.into(),
        });
    }
}

fn experiment_row(r: &AnyRow) -> Result<Experiment, DbError> {
    Ok(Experiment {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        lifecycle: r.try_get("lifecycle")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        tags: parse_json(&r.try_get::<String, _>("tags")?),
    })
}

fn run_row(r: &AnyRow) -> Result<Run, DbError> {
    Ok(Run {
        id: r.try_get("id")?,
        experiment_id: r.try_get("experiment_id")?,
        name: r.try_get("name")?,
        user_id: r.try_get("user_id")?,
        status: r.try_get("status")?,
        start_time: r.try_get("start_time")?,
        end_time: r.try_get("end_time")?,
        lifecycle: r.try_get("lifecycle")?,
        data: parse_json(&r.try_get::<String, _>("data")?),
    })
}

fn logged_model_row(r: &AnyRow) -> Result<LoggedModel, DbError> {
    Ok(LoggedModel {
        id: r.try_get("id")?,
        experiment_id: r.try_get("experiment_id")?,
        name: r.try_get("name")?,
        run_id: r.try_get("run_id")?,
        status: r.try_get("status")?,
        model_type: r.try_get("model_type")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        data: parse_json(&r.try_get::<String, _>("data")?),
    })
}

fn registered_row(r: &AnyRow) -> Result<RegisteredModel, DbError> {
    Ok(RegisteredModel {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        tags: parse_json(&r.try_get::<String, _>("tags")?),
    })
}

fn version_row(r: &AnyRow) -> Result<ModelVersion, DbError> {
    Ok(ModelVersion {
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        env: r.try_get("env")?,
        source: r.try_get("source")?,
        run_id: r.try_get("run_id")?,
        model_id: r.try_get("model_id")?,
        status: r.try_get("status")?,
        description: r.try_get("description")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        tags: parse_json(&r.try_get::<String, _>("tags")?),
        storage: r.try_get("storage")?,
        stage: r.try_get("stage")?,
        checks: parse_json(&r.try_get::<String, _>("checks")?),
    })
}

fn artifact_row(r: &AnyRow) -> Result<Artifact, DbError> {
    Ok(Artifact {
        path: r.try_get("path")?,
        object: r.try_get("object")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        env: r.try_get("env")?,
        model: r.try_get("model")?,
        version: r.try_get("version")?,
    })
}

/// Every ancestor directory of `path` as (parent, name) pairs, root first.
fn ancestors(path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let parts: Vec<&str> = path.split('/').collect();
    for i in 0..parts.len().saturating_sub(1) {
        out.push((parts[..i].join("/"), parts[i].to_owned()));
    }
    out
}

/// The directory part of a path ("" at the root).
pub fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

impl Store {
    /// Opens (creating if needed) the database at `url`: `sqlite://PATH` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, DbError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let url = if postgres || url.contains('?') {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 16 } else { 4 })
            .connect(&url)
            .await?;
        if !postgres {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        let store = Store { pool, postgres };
        if store.experiment("0").await?.is_none() {
            let now = now_ms();
            sqlx::query("INSERT INTO experiments (id, name, lifecycle, created, updated, tags) VALUES ('0', 'Default', 'active', $1, $2, '[]') ON CONFLICT DO NOTHING")
                .bind(now)
                .bind(now)
                .execute(&store.pool)
                .await?;
        }
        Ok(store)
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// A counter kept in `meta` (experiment ids), incremented in a transaction.
    async fn next_counter(&self, key: &str, start: i64) -> Result<i64, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(key)
            .bind(start.to_string())
            .execute(&mut *tx)
            .await?;
        let v: String = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?
            .try_get("value")?;
        let n: i64 = v.parse().unwrap_or(start);
        sqlx::query("UPDATE meta SET value = $1 WHERE key = $2")
            .bind((n + 1).to_string())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    // ---- experiments

    pub async fn create_experiment(&self, name: &str, tags: &[Tag]) -> Result<String, DbError> {
        let id = self.next_counter("experiment_id", 1).await?.to_string();
        let now = now_ms();
        sqlx::query("INSERT INTO experiments (id, name, lifecycle, created, updated, tags) VALUES ($1, $2, 'active', $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(now)
            .bind(now)
            .bind(tags_json(tags))
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn experiment(&self, id: &str) -> Result<Option<Experiment>, DbError> {
        sqlx::query("SELECT * FROM experiments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(experiment_row)
            .transpose()
    }

    pub async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, DbError> {
        sqlx::query("SELECT * FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(experiment_row)
            .transpose()
    }

    pub async fn experiments(&self) -> Result<Vec<Experiment>, DbError> {
        sqlx::query("SELECT * FROM experiments ORDER BY created")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(experiment_row)
            .collect()
    }

    pub async fn update_experiment(&self, e: &Experiment) -> Result<(), DbError> {
        sqlx::query("UPDATE experiments SET name = $1, lifecycle = $2, updated = $3, tags = $4 WHERE id = $5")
            .bind(&e.name)
            .bind(&e.lifecycle)
            .bind(now_ms())
            .bind(tags_json(&e.tags))
            .bind(&e.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- runs

    pub async fn insert_run(&self, r: &Run) -> Result<(), DbError> {
        sqlx::query("INSERT INTO runs (id, experiment_id, name, user_id, status, start_time, end_time, lifecycle, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&r.id)
            .bind(&r.experiment_id)
            .bind(&r.name)
            .bind(&r.user_id)
            .bind(&r.status)
            .bind(r.start_time)
            .bind(r.end_time)
            .bind(&r.lifecycle)
            .bind(serde_json::to_string(&r.data).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn run(&self, id: &str) -> Result<Option<Run>, DbError> {
        sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(run_row)
            .transpose()
    }

    pub async fn runs_of(&self, experiment_ids: &[String]) -> Result<Vec<Run>, DbError> {
        let mut out = Vec::new();
        for id in experiment_ids {
            let rows =
                sqlx::query("SELECT * FROM runs WHERE experiment_id = $1 ORDER BY start_time DESC")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
            for r in &rows {
                out.push(run_row(r)?);
            }
        }
        Ok(out)
    }

    pub async fn update_run(&self, r: &Run) -> Result<(), DbError> {
        sqlx::query("UPDATE runs SET name = $1, status = $2, end_time = $3, lifecycle = $4, data = $5 WHERE id = $6")
            .bind(&r.name)
            .bind(&r.status)
            .bind(r.end_time)
            .bind(&r.lifecycle)
            .bind(serde_json::to_string(&r.data).unwrap_or_default())
            .bind(&r.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- logged models

    pub async fn insert_logged_model(&self, m: &LoggedModel) -> Result<(), DbError> {
        sqlx::query("INSERT INTO logged_models (id, experiment_id, name, run_id, status, model_type, created, updated, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&m.id)
            .bind(&m.experiment_id)
            .bind(&m.name)
            .bind(&m.run_id)
            .bind(&m.status)
            .bind(&m.model_type)
            .bind(m.created)
            .bind(m.updated)
            .bind(serde_json::to_string(&m.data).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn logged_model(&self, id: &str) -> Result<Option<LoggedModel>, DbError> {
        sqlx::query("SELECT * FROM logged_models WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(logged_model_row)
            .transpose()
    }

    pub async fn logged_models_of(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<LoggedModel>, DbError> {
        let mut out = Vec::new();
        for id in experiment_ids {
            let rows = sqlx::query(
                "SELECT * FROM logged_models WHERE experiment_id = $1 ORDER BY created DESC",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                out.push(logged_model_row(r)?);
            }
        }
        Ok(out)
    }

    pub async fn update_logged_model(&self, m: &LoggedModel) -> Result<(), DbError> {
        sqlx::query("UPDATE logged_models SET status = $1, updated = $2, data = $3 WHERE id = $4")
            .bind(&m.status)
            .bind(now_ms())
            .bind(serde_json::to_string(&m.data).unwrap_or_default())
            .bind(&m.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_logged_model(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM logged_models WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- registered models

    /// `false` when the name is taken.
    pub async fn create_registered_model(&self, m: &RegisteredModel) -> Result<bool, DbError> {
        let done = sqlx::query("INSERT INTO registered_models (name, description, created, updated, tags, next_version) VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT DO NOTHING")
            .bind(&m.name)
            .bind(&m.description)
            .bind(m.created)
            .bind(m.updated)
            .bind(tags_json(&m.tags))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn registered_model(&self, name: &str) -> Result<Option<RegisteredModel>, DbError> {
        sqlx::query("SELECT * FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(registered_row)
            .transpose()
    }

    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, DbError> {
        sqlx::query("SELECT * FROM registered_models ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(registered_row)
            .collect()
    }

    pub async fn update_registered_model(&self, m: &RegisteredModel) -> Result<(), DbError> {
        sqlx::query("UPDATE registered_models SET description = $1, updated = $2, tags = $3 WHERE name = $4")
            .bind(&m.description)
            .bind(now_ms())
            .bind(tags_json(&m.tags))
            .bind(&m.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renames a model with its versions and aliases, in one transaction.
    pub async fn rename_registered_model(&self, from: &str, to: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query("SELECT name FROM registered_models WHERE name = $1")
            .bind(to)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Ok(false);
        }
        for sql in [
            "UPDATE registered_models SET name = $1 WHERE name = $2",
            "UPDATE model_versions SET name = $1 WHERE name = $2",
            "UPDATE aliases SET name = $1 WHERE name = $2",
            "UPDATE alias_history SET name = $1 WHERE name = $2",
        ] {
            sqlx::query(sql)
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a model; its versions are retired (kept for the inventory), never reused.
    pub async fn delete_registered_model(&self, name: &str) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO retired_versions (name, version, storage, checks, at) SELECT name, version, storage, checks, $1 FROM model_versions WHERE name = $2")
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        for sql in [
            "DELETE FROM model_versions WHERE name = $1",
            "DELETE FROM aliases WHERE name = $1",
            "DELETE FROM registered_models WHERE name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- versions

    /// Takes the next version number of a model (a crash after this leaves a gap, as MLflow's
    /// numbering allows). `None` when the model does not exist.
    pub async fn reserve_version(&self, name: &str) -> Result<Option<i64>, DbError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT next_version FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let number: i64 = row.try_get("next_version")?;
        sqlx::query("UPDATE registered_models SET next_version = $1, updated = $2 WHERE name = $3")
            .bind(number + 1)
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(number))
    }

    /// Makes a version visible with all its artifacts in one transaction.
    pub async fn insert_version(
        &self,
        v: &ModelVersion,
        files: &[Artifact],
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let number = v.version;
        sqlx::query("INSERT INTO model_versions (name, version, env, source, run_id, model_id, status, description, created, updated, tags, storage, stage, checks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
            .bind(&v.name)
            .bind(number)
            .bind(&v.env)
            .bind(&v.source)
            .bind(&v.run_id)
            .bind(&v.model_id)
            .bind(&v.status)
            .bind(&v.description)
            .bind(v.created)
            .bind(v.updated)
            .bind(tags_json(&v.tags))
            .bind(&v.storage)
            .bind(&v.stage)
            .bind(serde_json::to_string(&v.checks).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        for a in files {
            insert_artifact(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn version(&self, name: &str, version: i64) -> Result<Option<ModelVersion>, DbError> {
        sqlx::query("SELECT * FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(version_row)
            .transpose()
    }

    pub async fn versions_of(&self, name: &str) -> Result<Vec<ModelVersion>, DbError> {
        sqlx::query("SELECT * FROM model_versions WHERE name = $1 ORDER BY version")
            .bind(name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_row)
            .collect()
    }

    pub async fn all_versions(&self) -> Result<Vec<ModelVersion>, DbError> {
        sqlx::query("SELECT * FROM model_versions ORDER BY name, version")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_row)
            .collect()
    }

    /// The version whose storage holds `path`, if any.
    pub async fn version_by_storage(&self, storage: &str) -> Result<Option<ModelVersion>, DbError> {
        sqlx::query("SELECT * FROM model_versions WHERE storage = $1")
            .bind(storage)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(version_row)
            .transpose()
    }

    pub async fn update_version(&self, v: &ModelVersion) -> Result<(), DbError> {
        sqlx::query("UPDATE model_versions SET description = $1, updated = $2, tags = $3, stage = $4 WHERE name = $5 AND version = $6")
            .bind(&v.description)
            .bind(now_ms())
            .bind(tags_json(&v.tags))
            .bind(&v.stage)
            .bind(&v.name)
            .bind(v.version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_version(&self, name: &str, version: i64) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO retired_versions (name, version, storage, checks, at) SELECT name, version, storage, checks, $1 FROM model_versions WHERE name = $2 AND version = $3")
            .bind(now_ms())
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM aliases WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn retired_versions(&self) -> Result<Vec<(String, i64, String)>, DbError> {
        let rows = sqlx::query("SELECT name, version, storage FROM retired_versions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get("version")?,
                    r.try_get("storage")?,
                ))
            })
            .collect()
    }

    // ---- aliases

    pub async fn aliases_of(&self, name: &str) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT alias, version FROM aliases WHERE name = $1 ORDER BY alias")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("alias")?, r.try_get("version")?)))
            .collect()
    }

    pub async fn alias(&self, name: &str, alias: &str) -> Result<Option<i64>, DbError> {
        let row = sqlx::query("SELECT version FROM aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("version")).transpose()
    }

    /// Points (or with `None` removes) an alias and records the move in its history.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<i64>,
        principal: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        match version {
            Some(v) => {
                sqlx::query("INSERT INTO aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
                    .bind(name)
                    .bind(alias)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM aliases WHERE name = $1 AND alias = $2")
                    .bind(name)
                    .bind(alias)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) AS m FROM alias_history WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_one(&mut *tx)
        .await?
        .try_get("m")?;
        sqlx::query("INSERT INTO alias_history (name, alias, seq, version, at, principal, undone) VALUES ($1, $2, $3, $4, $5, $6, 0)")
            .bind(name)
            .bind(alias)
            .bind(seq + 1)
            .bind(version)
            .bind(now_ms())
            .bind(principal)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEvent>, DbError> {
        let rows = sqlx::query("SELECT seq, version, at, principal, undone FROM alias_history WHERE name = $1 AND alias = $2 ORDER BY seq")
            .bind(name)
            .bind(alias)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasEvent {
                    seq: r.try_get("seq")?,
                    version: r.try_get("version")?,
                    at: r.try_get("at")?,
                    principal: r.try_get("principal")?,
                    undone: r.try_get::<i64, _>("undone")? != 0,
                })
            })
            .collect()
    }

    /// Undoes the alias's last move: marks it undone and points the alias where it pointed
    /// before (removing it if it did not exist). Returns (from, to), or `None` when there is
    /// nothing to roll back to.
    pub async fn rollback_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<Option<(Option<i64>, Option<i64>)>, DbError> {
        let live: Vec<AliasEvent> = self
            .alias_history(name, alias)
            .await?
            .into_iter()
            .filter(|e| !e.undone)
            .collect();
        let [.., before, last] = live.as_slice() else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE alias_history SET undone = 1 WHERE name = $1 AND alias = $2 AND seq = $3",
        )
        .bind(name)
        .bind(alias)
        .bind(last.seq)
        .execute(&mut *tx)
        .await?;
        match before.version {
            Some(v) => {
                sqlx::query("INSERT INTO aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
                    .bind(name)
                    .bind(alias)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM aliases WHERE name = $1 AND alias = $2")
                    .bind(name)
                    .bind(alias)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some((last.version, before.version)))
    }

    // ---- artifacts

    pub async fn put_artifact(&self, a: &Artifact) -> Result<Option<String>, DbError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<String> = sqlx::query("SELECT object FROM artifacts WHERE path = $1")
            .bind(&a.path)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("object"))
            .transpose()?;
        sqlx::query("DELETE FROM artifacts WHERE path = $1")
            .bind(&a.path)
            .execute(&mut *tx)
            .await?;
        insert_artifact(&mut tx, a).await?;
        tx.commit().await?;
        Ok(old)
    }

    pub async fn artifact(&self, path: &str) -> Result<Option<Artifact>, DbError> {
        sqlx::query("SELECT * FROM artifacts WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(artifact_row)
            .transpose()
    }

    /// Direct children of `dir`: (files, subdirectory names).
    pub async fn list_dir(&self, dir: &str) -> Result<(Vec<Artifact>, Vec<String>), DbError> {
        let files = sqlx::query("SELECT * FROM artifacts WHERE dir = $1 ORDER BY path")
            .bind(dir)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(artifact_row)
            .collect::<Result<Vec<_>, _>>()?;
        let dirs = sqlx::query("SELECT name FROM artifact_dirs WHERE parent = $1 ORDER BY name")
            .bind(dir)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok((files, dirs))
    }

    /// Every file under `dir`, recursively.
    pub async fn list_tree(&self, dir: &str) -> Result<Vec<Artifact>, DbError> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            let (files, dirs) = self.list_dir(&d).await?;
            out.extend(files);
            for sub in dirs {
                todo.push(if d.is_empty() {
                    sub
                } else {
                    format!("{d}/{sub}")
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub async fn delete_artifacts_under(&self, dir: &str) -> Result<Vec<String>, DbError> {
        let files = self.list_tree(dir).await?;
        let mut tx = self.pool.begin().await?;
        for f in &files {
            sqlx::query("DELETE FROM artifacts WHERE path = $1")
                .bind(&f.path)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(files.into_iter().map(|f| f.object).collect())
    }

    /// Removes one file's row; returns its object.
    pub async fn delete_artifact(&self, path: &str) -> Result<Option<String>, DbError> {
        let Some(a) = self.artifact(path).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM artifacts WHERE path = $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(Some(a.object))
    }

    /// Every file row.
    pub async fn all_artifacts(&self) -> Result<Vec<Artifact>, DbError> {
        sqlx::query("SELECT * FROM artifacts ORDER BY path")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(artifact_row)
            .collect()
    }

    /// Points a path at a new object if it still points at `old`.
    pub async fn swap_object(&self, path: &str, old: &str, new: &str) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE artifacts SET object = $1 WHERE path = $2 AND object = $3")
            .bind(new)
            .bind(path)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Every object key the metadata references (for the orphan sweep).
    pub async fn referenced_objects(&self) -> Result<std::collections::HashSet<String>, DbError> {
        let rows = sqlx::query("SELECT object FROM artifacts")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("object")).collect()
    }

    // ---- backup

    /// Every row of every table, read in one transaction (a consistent snapshot), as JSON.
    pub async fn dump(
        &self,
    ) -> Result<Vec<(String, Vec<serde_json::Map<String, Value>>)>, DbError> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let mut out = Vec::new();
        for (table, cols) in tables() {
            let list = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT {list} FROM {table}");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?;
            let mut dumped = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut m = serde_json::Map::new();
                for (c, int) in &cols {
                    let v = if *int {
                        r.try_get::<Option<i64>, _>(*c)?
                            .map_or(Value::Null, Value::from)
                    } else {
                        r.try_get::<Option<String>, _>(*c)?
                            .map_or(Value::Null, Value::from)
                    };
                    m.insert((*c).to_owned(), v);
                }
                dumped.push(m);
            }
            out.push((table.to_owned(), dumped));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Whether the registry holds nothing but its defaults (a restore target).
    pub async fn is_empty(&self) -> Result<bool, DbError> {
        for sql in [
            "SELECT COUNT(*) AS n FROM registered_models",
            "SELECT COUNT(*) AS n FROM artifacts",
            "SELECT COUNT(*) AS n FROM runs",
            "SELECT COUNT(*) AS n FROM tokens",
        ] {
            let n: i64 = sqlx::query(sql).fetch_one(&self.pool).await?.try_get("n")?;
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Loads dumped rows in one transaction, replacing the defaults.
    pub async fn load(
        &self,
        data: &[(String, Vec<serde_json::Map<String, Value>>)],
    ) -> Result<(), DbError> {
        let known = tables();
        let mut tx = self.pool.begin().await?;
        for (table, cols) in &known {
            let sql = format!("DELETE FROM {table}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            let Some((_, rows)) = data.iter().find(|(t, _)| t == table) else {
                continue;
            };
            let list = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            let marks = (1..=cols.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
            for row in rows {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for (c, int) in cols {
                    let v = row.get(*c).unwrap_or(&Value::Null);
                    q = if *int {
                        q.bind(v.as_i64())
                    } else {
                        q.bind(v.as_str().map(str::to_owned))
                    };
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- tokens

    pub async fn insert_token(&self, t: &TokenRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO tokens (id, name, salt, hash, scopes, created, expires, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.salt)
            .bind(&t.hash)
            .bind(serde_json::to_string(&t.scopes).unwrap_or_default())
            .bind(t.created)
            .bind(t.expires)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, DbError> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TokenRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                salt: r.try_get("salt")?,
                hash: r.try_get("hash")?,
                scopes: parse_json(&r.try_get::<String, _>("scopes")?),
                created: r.try_get("created")?,
                expires: r.try_get("expires")?,
                revoked: r.try_get::<i64, _>("revoked")? != 0,
            })
        })
        .transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>, DbError> {
        let ids: Vec<String> = sqlx::query("SELECT id FROM tokens ORDER BY created")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(t) = self.token(&id).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

async fn insert_artifact(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    a: &Artifact,
) -> Result<(), DbError> {
    for (parent, name) in ancestors(&a.path) {
        sqlx::query(
            "INSERT INTO artifact_dirs (parent, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(parent)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("INSERT INTO artifacts (path, dir, object, size, sha256, env, model, version, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&a.path)
        .bind(dir_of(&a.path))
        .bind(&a.object)
        .bind(a.size)
        .bind(&a.sha256)
        .bind(&a.env)
        .bind(&a.model)
        .bind(a.version)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_every_directory_on_the_way() {
        assert_eq!(
            ancestors("0/r/artifacts/model/MLmodel"),
            vec![
                (String::new(), "0".to_owned()),
                ("0".into(), "r".into()),
                ("0/r".into(), "artifacts".into()),
                ("0/r/artifacts".into(), "model".into()),
            ]
        );
        assert!(ancestors("top").is_empty());
        assert_eq!(dir_of("a/b/c"), "a/b");
        assert_eq!(dir_of("c"), "");
    }
}
