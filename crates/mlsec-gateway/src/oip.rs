//! KServe / Triton Open Inference Protocol v2: an `infer` request's tensors are checked against
//! the model's declared inputs (name, datatype, shape with `-1` for free dimensions, element
//! count and byte size) before the upstream sees them.

use serde_json::{Map, Value};

use crate::config::TensorSpec;
use crate::error::ApiError;

/// Most elements in one request's tensors together.
pub const MAX_ELEMENTS: u64 = 1 << 24;
/// Most dimensions in one tensor.
pub const MAX_RANK: usize = 16;

/// Bytes per element of an OIP datatype (`BYTES` counts as 1: its strings are measured).
pub fn dtype_size(d: &str) -> Option<u64> {
    Some(match d {
        "BOOL" | "INT8" | "UINT8" | "BYTES" => 1,
        "INT16" | "UINT16" | "FP16" | "BF16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        _ => return None,
    })
}

fn bad(msg: String, param: &str) -> ApiError {
    ApiError::bad_request("invalid_tensor", msg).param(param)
}

/// Checks an infer request. Returns the total element count.
pub fn check_infer(body: &Map<String, Value>, inputs: &[TensorSpec]) -> Result<u64, ApiError> {
    if body
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .is_some()
        || body
            .get("inputs")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|t| {
                    t.get("parameters")
                        .and_then(|p| p.get("binary_data_size"))
                        .is_some()
                })
            })
    {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "the binary tensor extension is not accepted: send tensors as JSON data",
        ));
    }
    let Some(Value::Array(given)) = body.get("inputs") else {
        return Err(bad("inputs must be an array of tensors".into(), "inputs"));
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for (i, t) in given.iter().enumerate() {
        let at = format!("inputs[{i}]");
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.name must be a string"), &at))?;
        let spec = inputs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| bad(format!("{at}: the model has no input named {name:?}"), &at))?;
        if !seen.insert(name) {
            return Err(bad(format!("{at}: input {name:?} given twice"), &at));
        }
        let dtype = t.get("datatype").and_then(Value::as_str).unwrap_or("");
        if dtype != spec.datatype {
            return Err(bad(
                format!(
                    "{at} ({name}): datatype {dtype:?}, the model takes {:?}",
                    spec.datatype
                ),
                &at,
            ));
        }
        let shape: Vec<u64> = match t.get("shape") {
            Some(Value::Array(a)) if a.len() <= MAX_RANK => a
                .iter()
                .map(Value::as_u64)
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| bad(format!("{at}.shape must hold non-negative integers"), &at))?,
            _ => {
                return Err(bad(
                    format!("{at}.shape must be an array of at most {MAX_RANK} integers"),
                    &at,
                ));
            }
        };
        let fits = shape.len() == spec.shape.len()
            && shape
                .iter()
                .zip(&spec.shape)
                .all(|(&g, &d)| d == -1 || g == d as u64);
        if !fits {
            return Err(bad(
                format!(
                    "{at} ({name}): shape {shape:?}, the model takes {:?}",
                    spec.shape
                ),
                &at,
            ));
        }
        let count = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| bad(format!("{at}: more than {MAX_ELEMENTS} elements"), &at))?;
        total = total.saturating_add(count);
        if total > MAX_ELEMENTS {
            return Err(bad(
                format!("more than {MAX_ELEMENTS} elements in all"),
                "inputs",
            ));
        }
        let data = t
            .get("data")
            .ok_or_else(|| bad(format!("{at}.data is required"), &at))?;
        let mut n = 0u64;
        if !elements_ok(data, dtype, &mut n, 0) {
            return Err(bad(
                format!("{at} ({name}): data holds a value that is not {dtype}"),
                &at,
            ));
        }
        if n != count {
            return Err(bad(
                format!("{at} ({name}): data has {n} elements, shape {shape:?} needs {count}"),
                &at,
            ));
        }
    }
    for s in inputs {
        if !seen.contains(s.name.as_str()) {
            return Err(bad(format!("input {:?} is missing", s.name), "inputs"));
        }
    }
    Ok(total)
}

/// Counts the leaves of (possibly nested) data and checks each against the datatype.
fn elements_ok(v: &Value, dtype: &str, n: &mut u64, depth: usize) -> bool {
    if depth > MAX_RANK {
        return false;
    }
    match v {
        Value::Array(a) => a.iter().all(|x| elements_ok(x, dtype, n, depth + 1)),
        leaf => {
            *n += 1;
            if *n > MAX_ELEMENTS {
                return false;
            }
            match dtype {
                "BOOL" => leaf.is_boolean(),
                "BYTES" => leaf.is_string(),
                "FP16" | "BF16" | "FP32" | "FP64" => leaf.is_number(),
                d if d.starts_with("UINT") => {
                    let bits: u32 = d[4..].parse().unwrap_or(64);
                    leaf.as_u64()
                        .is_some_and(|x| bits >= 64 || x < 1u64 << bits)
                }
                d if d.starts_with("INT") => {
                    let bits: u32 = d[3..].parse().unwrap_or(64);
                    leaf.as_i64().is_some_and(|x| {
                        bits >= 64 || (x >= -(1i64 << (bits - 1)) && x < 1i64 << (bits - 1))
                    })
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Vec<TensorSpec> {
        vec![TensorSpec {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 3],
        }]
    }

    fn check(v: &Value) -> Result<u64, ApiError> {
        check_infer(v.as_object().expect("object"), &spec())
    }

    #[test]
    fn accepts_matching_tensors_flat_or_nested() {
        assert_eq!(check(&json!({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5,6]}]})).expect("ok"), 6);
        assert_eq!(
            check(
                &json!({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[[1.5,2,3]]}]})
            )
            .expect("ok"),
            3
        );
    }

    #[test]
    fn refuses_wrong_name_dtype_shape_count_and_values() {
        for bad in [
            json!({"inputs":[{"name":"y","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}),
            json!({"inputs":[{"name":"x","datatype":"INT8","shape":[1,3],"data":[1,2,3]}]}),
            json!({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}),
            json!({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2]}]}),
            json!({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,"a",3]}]}),
            json!({"inputs":[{"name":"x","datatype":"FP32","shape":[4_294_967_296_u64,4_294_967_296_u64],"data":[]}]}),
            json!({"inputs":[]}),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
    }
}
