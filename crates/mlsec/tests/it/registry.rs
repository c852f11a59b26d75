//! `mlsec registry`: tokens from the CLI, and crash consistency of the real server process
//! (`kill -9` during an upload and during a registration leaves no partial file or version).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mlsec(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlsec"));
    c.current_dir(dir);
    c
}

fn serve(dir: &Path, port: u16) -> Child {
    let child = mlsec(dir)
        .args(["registry", "--config", "registry.toml", "serve"])
        .env("MLSEC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn request_head(method: &str, path: &str, token: &str, len: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn http(port: u16, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request_head(method, path, token, body.len()).as_bytes())
        .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

fn json_call(port: u16, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (s, b) = http(port, method, path, token, body.to_string().as_bytes());
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn kill_9(child: &mut Child) {
    // std's kill is SIGKILL on Unix: no drain, no destructors.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_during_an_upload_or_a_registration_leaves_no_partial_file_or_version() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("registry.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"data\"\n"),
    )
    .unwrap();
    let out = mlsec(dir.path())
        .args([
            "registry",
            "--config",
            "registry.toml",
            "token",
            "create",
            "--name",
            "t",
            "--scope",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("mlsr_"));
    // Stored hashed: the secret is nowhere in the database.
    let secret = token.rsplit('_').next().unwrap();
    let db = std::fs::read(dir.path().join("data/registry.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));

    let mut server = serve(dir.path(), port);
    let (_, run) = json_call(
        port,
        "POST",
        "/api/2.0/mlflow/runs/create",
        &token,
        &json!({"experiment_id": "0"}),
    );
    let run = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    let art = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model");
    let small: Vec<u8> = b"weights".repeat(100);
    assert_eq!(
        http(port, "PUT", &format!("{art}/a.bin"), &token, &small).0,
        200
    );

    // 1. Killed half-way through an upload.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request_head("PUT", &format!("{art}/big.bin"), &token, 50 << 20).as_bytes())
        .unwrap();
    s.write_all(&vec![7u8; 8 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill_9(&mut server);
    drop(s);
    let mut server = serve(dir.path(), port);
    let (st, list) = json_call(
        port,
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts?path=0/{run}/artifacts/model"),
        &token,
        &json!({}),
    );
    assert_eq!(st, 200);
    let names: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.bin"], "a cut upload is not visible");
    assert_eq!(
        http(port, "GET", &format!("{art}/big.bin"), &token, b"").0,
        404
    );
    assert_eq!(
        http(port, "GET", &format!("{art}/a.bin"), &token, b"").1,
        small
    );

    // 2. Killed half-way through registering a version (copy, re-encryption, scan).
    let big: Vec<u8> = (0..(192u32 << 20)).map(|i| (i % 253) as u8).collect();
    assert_eq!(
        http(port, "PUT", &format!("{art}/big.bin"), &token, &big).0,
        200
    );
    assert_eq!(
        json_call(
            port,
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            &token,
            &json!({"name": "m"})
        )
        .0,
        200
    );
    let body = json!({"name": "m", "source": format!("runs:/{run}/model")}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        request_head(
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            &token,
            body.len(),
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    s.set_nonblocking(true).unwrap();
    let mut probe = [0u8; 1];
    let answered =
        !matches!(s.read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(
        !answered,
        "the registration finished before the kill; the test needs a bigger file"
    );
    kill_9(&mut server);
    let mut server = serve(dir.path(), port);
    let (st, _) = json_call(
        port,
        "GET",
        "/api/2.0/mlflow/model-versions/get?name=m&version=1",
        &token,
        &json!({}),
    );
    assert_eq!(st, 404, "no partial version after the crash");
    let (_, found) = json_call(
        port,
        "GET",
        "/api/2.0/mlflow/model-versions/search?filter=name%3D%27m%27",
        &token,
        &json!({}),
    );
    assert!(
        found["model_versions"].as_array().unwrap().is_empty(),
        "{found}"
    );
    // Registering again works and the files are whole.
    let (st, v) = json_call(
        port,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        &token,
        &serde_json::from_str(&body).unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    let n = v["model_version"]["version"].as_str().unwrap().to_owned();
    let (_, uri) = json_call(
        port,
        "GET",
        &format!("/api/2.0/mlflow/model-versions/get-download-uri?name=m&version={n}"),
        &token,
        &json!({}),
    );
    let storage = uri["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let (st, got) = http(
        port,
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{storage}/big.bin"),
        &token,
        b"",
    );
    assert_eq!(st, 200);
    assert!(
        got == big,
        "downloaded {} bytes, expected {}",
        got.len(),
        big.len()
    );
    kill_9(&mut server);
}

#[test]
fn inventory_reports_manifests_and_gateway_models_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("registry.toml"), "[storage]\ndata_dir = \"data\"\n").unwrap();
    std::fs::create_dir(d.join("k8s")).unwrap();
    std::fs::write(
        d.join("k8s/isvc.yaml"),
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: fraud\n  namespace: prod\n  labels:\n    owner: risk\nspec:\n  predictor:\n    model:\n      storageUri: models:/ghost@prod\n",
    )
    .unwrap();
    let gw = std::fs::read_to_string(super::repo().join("examples/gateway/gateway.toml"))
        .unwrap()
        .replace(
            "name = \"chat-model\"\n",
            "name = \"chat-model\"\nregistry = \"models:/chat@staging\"\n",
        );
    std::fs::write(d.join("gateway.toml"), gw).unwrap();
    let out = mlsec(d)
        .args([
            "registry",
            "--config",
            "registry.toml",
            "inventory",
            "k8s",
            "--gateway",
            "gateway.toml",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("REG006") && stdout.contains("ghost@prod"),
        "{stdout}"
    );
    assert!(stdout.contains("gateway model chat-model"), "{stdout}");
    assert!(
        stdout.contains("REG004"),
        "the gateway model names no owner: {stdout}"
    );
    let out = mlsec(d)
        .args([
            "registry",
            "--config",
            "registry.toml",
            "inventory",
            "k8s",
            "--format",
            "sarif",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "REG006");
    // A junk registry reference in the gateway is an error naming the file and the model.
    let gw = std::fs::read_to_string(d.join("gateway.toml"))
        .unwrap()
        .replace("models:/chat@staging", "chat");
    std::fs::write(d.join("gateway.toml"), gw).unwrap();
    let out = mlsec(d)
        .args([
            "registry",
            "--config",
            "registry.toml",
            "inventory",
            "--gateway",
            "gateway.toml",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gateway.toml") && stderr.contains("chat-model"),
        "{stderr}"
    );
}
