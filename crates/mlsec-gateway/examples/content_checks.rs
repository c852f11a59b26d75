//! What the content checks cost per request, in process, one part at a time (the gateway
//! benchmark measures them end to end): the injection guard on a request, the output checks on a
//! whole response and on a stream of token events, one abuse-window update, and the model
//! monitor on a request and a response.
//!
//! `cargo run --release -p mlsec-gateway --example content_checks [-- ROUNDS]`

use std::hint::black_box;
use std::time::Instant;

use mlsec_gateway::abuse::{self, AbuseConfig};
use mlsec_gateway::config::RouteKind;
use mlsec_gateway::guard::{Guard, GuardContext, Injection};
use mlsec_gateway::output::OutputConfig;
use mlsec_guard::abuse::Window;
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// Median nanoseconds per call of `f` over `rounds` rounds of `n` calls.
fn time(rounds: usize, n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut per = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let t = Instant::now();
        for i in 0..n {
            f(r * n + i);
        }
        per.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    per.sort_by(f64::total_cmp);
    per[per.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let n = 2000;
    let request = obj(
        json!({"model": "chat-model", "max_tokens": 16, "messages": [
        {"role": "system", "content": "You answer questions about Acme invoices, briefly and politely."},
        {"role": "user", "content": "hello there, can you tell me why invoice 1182 was charged twice last month?"}]}),
    );
    let response = json!({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content":
            "Invoice 1182 was charged twice because the payment retried after a timeout on 3 May. \
             The second charge is refunded automatically within five working days; if it is not, \
             reply here and I will open a ticket with billing."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 50, "total_tokens": 90}})
    .to_string();
    let output: OutputConfig =
        toml::from_str("secrets = \"redact\"\npii = \"redact\"\nsystem_prompt = \"block\"")
            .expect("config");
    let abuse_cfg: AbuseConfig = toml::from_str("action = \"alert\"").expect("config");

    let guard = Injection::new();
    let ctx = GuardContext {
        route: RouteKind::Chat,
        model: "chat-model",
        principal: "key:bench",
    };
    let g = time(rounds, n, |_| {
        black_box(guard.request(&ctx, black_box(&request)));
    });

    let whole = time(rounds, n, |_| {
        let mut body = request.clone();
        let mut scan = output.begin(RouteKind::Chat, &mut body).expect("on");
        black_box(scan.whole(response.as_bytes()).is_ok());
    });
    let begin = time(rounds, n, |_| {
        let mut body = request.clone();
        black_box(output.begin(RouteKind::Chat, &mut body).is_some());
    });

    // A 60-token stream, one event per token.
    let words: Vec<String> = response.split(' ').map(|w| format!("{w} ")).collect();
    let events: Vec<Vec<u8>> = words
        .iter()
        .map(|w| {
            format!(
                "data: {}\n\n",
                json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":w}}]})
            )
            .into_bytes()
        })
        .collect();
    let stream = time(rounds, n / 20, |_| {
        let mut body = request.clone();
        let mut scan = output.begin(RouteKind::Chat, &mut body).expect("on");
        for e in &events {
            black_box(scan.chunk(e));
        }
        black_box(scan.finish());
    }) / events.len() as f64;

    let mut window = Window::default();
    let prompts: Vec<String> = (0..512)
        .map(|i| format!("question {i} about invoice {} and refunds", i * 7))
        .collect();
    let ab = time(rounds, n, |i| {
        let e = abuse::event(
            RouteKind::Chat,
            &obj(json!({"messages": [{"role": "user", "content": prompts[i % 512]}]})),
            i as u64,
        );
        black_box(window.push(e, abuse_cfg.window_secs * 1000));
    });

    let (mon_req, mon_resp) = monitor_costs(rounds, n);

    if std::env::var_os("PARTS").is_some() {
        parts(&response);
    }
    println!("median per call over {rounds} rounds (µs)");
    println!(
        "injection guard on a chat request          {:>8.1}",
        g / 1e3
    );
    println!(
        "output checks: set up (canary planted)     {:>8.1}",
        begin / 1e3
    );
    println!(
        "output checks: set up + whole response     {:>8.1}",
        whole / 1e3
    );
    println!(
        "output checks: per streamed token event    {:>8.1}",
        stream / 1e3
    );
    println!(
        "abuse: event + window update (256 events)  {:>8.1}",
        ab / 1e3
    );
    println!(
        "monitor: 4 features, OOD score, window     {:>8.1}",
        mon_req / 1e3
    );
    println!(
        "monitor: probabilities, entropy, latency   {:>8.1}",
        mon_resp / 1e3
    );
}

/// The model monitor on a JSON prediction request with four features (a 1,000-request window
/// against a 20,000-row profile, so the window comparisons are in the average), and on its
/// response.
fn monitor_costs(rounds: usize, n: usize) -> (f64, f64) {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use mlsec_gateway::config::Config;
    use mlsec_gateway::monitor::ModelMonitor;
    use mlsec_gateway::stages::Call;

    let dir = std::env::temp_dir().join(format!("mlsec-content-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut csv = String::from("amount,age,items,score\n");
    for i in 0..20_000u32 {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            i % 977,
            18 + i % 60,
            1 + i % 9,
            f64::from(i % 101) / 100.0
        ));
    }
    let table =
        mlsec_drift::table::read(csv.as_bytes(), "ref.csv", mlsec_drift::table::Format::Csv)
            .expect("reference");
    std::fs::write(
        dir.join("ref.profile.json"),
        serde_json::to_vec(&mlsec_drift::profile::Profile::of(&table)).expect("profile"),
    )
    .expect("write profile");
    std::fs::write(dir.join("any.schema.json"), "{}").expect("schema");
    let text = r#"
[auth]
keys_file = "keys.json"
[policies.p]
models = ["*"]
[[models]]
name = "fraud"
protocol = "json"
upstreams = ["http://127.0.0.1:9"]
schema = "any.schema.json"
[models.monitor]
profile = "ref.profile.json"
features = { amount = "/amount", age = "/customer/age", items = "/items", score = "/score" }
probabilities = "/probabilities"
window = 1000
"#;
    let config = Config::parse(text, &dir.join("gateway.toml"), &dir).expect("config");
    let mc = config.models[0].monitor.clone().expect("monitor");
    let monitor =
        ModelMonitor::new("fraud", &mc, config.models[0].protocol, &config).expect("monitor");
    let model = Arc::new(mlsec_gateway::Model {
        config: config.models[0].clone(),
        upstreams: Vec::new(),
        next: AtomicUsize::new(0),
        upstream_auth: None,
        schema: None,
        monitor: None,
    });
    let calls: Vec<Call> = (0..512u32)
        .map(|i| Call {
            kind: RouteKind::Predict,
            model_name: "fraud".into(),
            model: model.clone(),
            checked: None,
            upstream_path: "/invocations".into(),
            body: obj(
                json!({"amount": i * 3 % 977, "customer": {"age": 20 + i % 50},
                "items": 1 + i % 9, "score": f64::from(i % 100) / 100.0}),
            ),
        })
        .collect();
    let req = time(rounds, n, |i| {
        black_box(monitor.observe_request(&calls[i % 512]));
    });
    let body = json!({"prediction": 1, "probabilities": [0.81, 0.12, 0.07]}).to_string();
    let resp = time(rounds, n, |_| {
        black_box(monitor.observe_response(body.as_bytes()));
        black_box(monitor.finish(
            axum::http::StatusCode::OK,
            std::time::Duration::from_micros(900),
        ));
    });
    let _ = std::fs::remove_dir_all(&dir);
    (req, resp)
}

#[allow(dead_code)]
fn parts(text: &str) {
    use mlsec_guard::output::{Leak, Pii, find_pii, find_secrets};
    let s = time(7, 2000, |_| {
        black_box(find_secrets(black_box(text)));
    });
    let p = time(7, 2000, |_| {
        black_box(find_pii(black_box(text), &Pii::ALL));
    });
    let mut leak = Leak::new(
        "You answer questions about Acme invoices, briefly and politely.",
        Some("mlsec0123456789abcdef0123".into()),
    );
    let l = time(7, 2000, |_| {
        black_box(leak.check(black_box(text)));
    });
    for k in Pii::ALL {
        let t = time(7, 2000, |_| {
            black_box(find_pii(black_box(text), &[k]));
        });
        println!("  pii {:?} {:.1}", k, t / 1e3);
    }
    println!(
        "secrets {:.1} pii {:.1} leak {:.1}",
        s / 1e3,
        p / 1e3,
        l / 1e3
    );
}
