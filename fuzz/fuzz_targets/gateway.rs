//! The gateway's parsers of client and operator bytes: config files, request bodies through
//! every route's validation, OIP tensors, template variables, SSE streams from upstreams, API
//! key tokens, audit logs, and the model monitor's reading of request features and response
//! probabilities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_gateway::config::{Config, Policy, RouteKind, TemplateConfig, TensorSpec};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 6 {
        0 => {
            let _ = Config::parse(&String::from_utf8_lossy(rest), std::path::Path::new("f.toml"), std::path::Path::new("/nonexistent"));
        }
        1 => {
            if let Ok(body) = mlsec_gateway::validate::parse_object(rest) {
                let policy: Policy = toml::from_str("models = [\"*\"]").expect("policy");
                for k in RouteKind::ALL {
                    let _ = mlsec_gateway::validate::openai_request(k, &mut body.clone(), &policy);
                }
                let spec = [TensorSpec { name: "x".into(), datatype: "FP32".into(), shape: vec![-1, 3] }];
                let _ = mlsec_gateway::oip::check_infer(&body, &spec);
                let t = TemplateConfig {
                    name: "t".into(),
                    model: "m".into(),
                    system: "s".into(),
                    template: "a {{x}} b".into(),
                    variables: vec!["x".into()],
                    max_variable_bytes: 1 << 16,
                };
                if let Some(serde_json::Value::Object(vars)) = body.get("variables") {
                    let _ = mlsec_gateway::template::render(&t, vars);
                }
            }
        }
        2 => {
            let mut s = mlsec_gateway::proxy::SseScan::default();
            for chunk in rest.chunks(7) {
                s.feed(chunk);
            }
        }
        3 => {
            let store = mlsec_gateway::keys::KeyStore::default();
            let _ = store.check(&String::from_utf8_lossy(rest));
            let _ = mlsec_gateway::template::slots(&String::from_utf8_lossy(rest));
        }
        4 => {
            use mlsec_gateway::config::Protocol;
            use mlsec_gateway::monitor::{Source, feature_values, probability_rows};
            if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(rest) {
                let value = serde_json::Value::Object(body.clone());
                for (text, protocol) in [
                    ("/instances/*/0", Protocol::Json),
                    ("/a/*/*/b", Protocol::Json),
                    ("input:x:1", Protocol::Oip),
                    ("input:x", Protocol::Oip),
                    ("prompt_chars", Protocol::Openai),
                ] {
                    if let Ok(s) = Source::feature(text, protocol) {
                        for k in RouteKind::ALL {
                            assert!(feature_values(&s, k, &body, None).len() <= mlsec_gateway::monitor::MAX_ROWS);
                        }
                    }
                }
                for (text, protocol) in [
                    ("/probabilities", Protocol::Json),
                    ("/predictions/*", Protocol::Json),
                    ("output:probs", Protocol::Oip),
                    ("logprobs", Protocol::Openai),
                ] {
                    if let Ok(s) = Source::probabilities(text, protocol) {
                        let _ = probability_rows(&s, &value);
                    }
                }
            }
        }
        _ => {
            let dir = std::env::temp_dir().join(format!("mlsec-fuzz-audit-{}", std::process::id()));
            if std::fs::write(&dir, rest).is_ok() {
                let _ = mlsec_gateway::audit::verify(&dir);
            }
        }
    }
});
