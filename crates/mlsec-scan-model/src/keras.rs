//! Keras model configs (`.keras` config.json, legacy `.h5` model_config): Lambda layers and
//! objects deserialized from modules outside Keras.

use mlsec_diagnostics::{Rule, Severity};
use serde_json::Value;

use crate::policy::{self, Verdict};
use crate::rules;

/// Deepest JSON nesting walked.
pub const MAX_DEPTH: usize = 128;
/// Most JSON nodes walked.
pub const MAX_NODES: usize = 2_000_000;

pub struct Risk {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub pointer: String,
    pub message: String,
    pub evidence: String,
}

const KERAS_MODULES: &[&str] = &[
    "keras",
    "tensorflow",
    "tf_keras",
    "keras_nlp",
    "keras_cv",
    "keras_hub",
];

fn is_keras_module(m: &str) -> bool {
    let root = m.split('.').next().unwrap_or(m);
    KERAS_MODULES.contains(&root)
}

fn is_builtin_type(module: &str, target: &str) -> bool {
    module == "builtins"
        && matches!(
            target,
            "function" | "list" | "dict" | "tuple" | "set" | "int" | "float" | "str" | "bool"
        )
}

/// Walks a config and returns what it risks.
pub fn risks(v: &Value) -> Vec<Risk> {
    let mut out = Vec::new();
    let mut nodes = 0usize;
    walk(v, String::new(), 0, &mut nodes, &mut out);
    out
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn walk(v: &Value, ptr: String, depth: usize, nodes: &mut usize, out: &mut Vec<Risk>) {
    *nodes += 1;
    if depth > MAX_DEPTH || *nodes > MAX_NODES {
        if *nodes == MAX_NODES + 1 || depth == MAX_DEPTH + 1 {
            out.push(Risk {
                rule: &rules::KERAS_MALFORMED,
                severity: Severity::Medium,
                pointer: ptr,
                message: "config exceeds MAX_DEPTH or MAX_NODES; the rest is not checked".into(),
                evidence: String::new(),
            });
        }
        return;
    }
    match v {
        Value::Object(m) => {
            let class = m.get("class_name").and_then(Value::as_str);
            if class == Some("Lambda") {
                let func = m.get("config").and_then(|c| c.get("function"));
                let bytecode = match func {
                    Some(Value::Array(a)) => a.first().is_some_and(Value::is_string),
                    Some(Value::Object(o)) => {
                        o.get("class_name").and_then(Value::as_str) == Some("__lambda__")
                    }
                    Some(Value::String(_)) => {
                        m.get("config")
                            .and_then(|c| c.get("function_type"))
                            .and_then(Value::as_str)
                            == Some("lambda")
                    }
                    _ => false,
                };
                let name = m
                    .get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                out.push(Risk {
                    rule: &rules::KERAS_LAMBDA,
                    severity: if bytecode { Severity::Critical } else { Severity::High },
                    pointer: ptr.clone(),
                    message: if bytecode {
                        format!("Lambda layer {name:?} carries marshalled Python bytecode that runs when the model is loaded")
                    } else {
                        format!("Lambda layer {name:?} calls a Python function when the model is loaded")
                    },
                    evidence: func.map_or_else(|| "Lambda".to_owned(), short),
                });
            }
            if let Some(module) = m.get("module").and_then(Value::as_str) {
                let cls = class.unwrap_or("");
                // Functions serialize as {"module": m, "class_name": "function", "config": name}.
                let target = if cls == "function" {
                    m.get("config").and_then(Value::as_str).unwrap_or("")
                } else {
                    cls
                };
                let verdict = if target.is_empty() {
                    policy::dangerous_module(module).map(|what| Verdict::Dangerous {
                        severity: Severity::Critical,
                        what,
                    })
                } else {
                    Some(policy::classify(module, target))
                };
                match verdict {
                    Some(Verdict::Dangerous { what, .. }) => out.push(Risk {
                        rule: &rules::KERAS_UNSAFE_MODULE,
                        severity: Severity::Critical,
                        pointer: ptr.clone(),
                        message: format!(
                            "config deserializes {module}.{target}: {what} when the model is loaded"
                        ),
                        evidence: short(v),
                    }),
                    _ if !is_keras_module(module) && !is_builtin_type(module, target) => {
                        out.push(Risk {
                            rule: &rules::KERAS_CUSTOM_OBJECT,
                            severity: Severity::Low,
                            pointer: ptr.clone(),
                            message: format!(
                                "config loads {module}.{target}, code from outside Keras"
                            ),
                            evidence: format!("module={module:?} class_name={cls:?}"),
                        });
                    }
                    _ => {}
                }
            }
            for (k, child) in m {
                walk(
                    child,
                    format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")),
                    depth + 1,
                    nodes,
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, format!("{ptr}/{i}"), depth + 1, nodes, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_function_is_critical() {
        let v: Value = serde_json::from_str(r#"{"class_name":"Functional","config":{"layers":[{"module":"os","class_name":"function","config":"system","registered_name":"function"}]}}"#).unwrap();
        let r = risks(&v);
        assert!(
            r.iter()
                .any(|r| r.rule.id == "KER002" && r.severity == Severity::Critical),
            "{:?}",
            r.iter().map(|r| &r.message).collect::<Vec<_>>()
        );
    }

    #[test]
    fn plain_keras_is_quiet() {
        let v: Value = serde_json::from_str(r#"{"module":"keras","class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"Dense","config":{"activation":"relu"}}]}}"#).unwrap();
        assert!(risks(&v).is_empty());
    }
}
