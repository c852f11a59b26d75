//! Every statistic against the vectors `scripts/drift_scipy_vectors.py` wrote with scipy.

use mlsec_drift::stats;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/drift/scipy-vectors.json"
    );
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn sorted(v: &Value) -> Vec<f64> {
    let mut x = floats(v);
    x.sort_by(f64::total_cmp);
    x
}

/// Agreement to 1e-6: absolute, or relative for values far below 1 (tail p-values).
fn close(got: f64, want: f64, what: &str) {
    let diff = (got - want).abs();
    let ok = diff <= 1e-6 && (want.abs() >= 1e-3 || diff <= 1e-6 * want.abs() || diff < 1e-15);
    assert!(ok, "{what}: got {got:e}, scipy {want:e}");
}

#[test]
fn ks_2samp_and_wasserstein_match_scipy() {
    let v = vectors();
    let cases = v["ks_2samp"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, c) in cases.iter().enumerate() {
        let (a, b) = (sorted(&c["a"]), sorted(&c["b"]));
        let ks = stats::ks_2samp(&a, &b);
        let what = format!("case {i} (n1={}, n2={})", a.len(), b.len());
        close(
            ks.statistic,
            c["statistic"].as_f64().unwrap(),
            &format!("{what} D"),
        );
        close(
            ks.p_value,
            c["p_value"].as_f64().unwrap(),
            &format!("{what} p"),
        );
        close(
            stats::wasserstein(&a, &b),
            c["wasserstein"].as_f64().unwrap(),
            &format!("{what} wasserstein"),
        );
    }
}

#[test]
fn kolmogorov_distribution_matches_scipy_kstwo() {
    for c in vectors()["kstwo_sf"].as_array().unwrap() {
        let (n, x) = (c["n"].as_u64().unwrap(), c["x"].as_f64().unwrap());
        close(
            stats::kolmogorov_sf(x, n),
            c["sf"].as_f64().unwrap(),
            &format!("kstwo.sf({x}, {n})"),
        );
    }
}

#[test]
fn chi2_contingency_matches_scipy() {
    let v = vectors();
    for c in v["chi2_contingency"].as_array().unwrap() {
        let counts = |k: &str| -> Vec<u64> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        };
        let got = stats::chi2_contingency(&counts("reference"), &counts("current"));
        let what = format!("{} vs {}", c["reference"], c["current"]);
        close(got.statistic, c["statistic"].as_f64().unwrap(), &what);
        close(got.p_value, c["p_value"].as_f64().unwrap(), &what);
        assert_eq!(got.dof, c["dof"].as_u64().unwrap(), "{what}");
    }
    for c in v["chi2_sf"].as_array().unwrap() {
        let (x, dof) = (c["x"].as_f64().unwrap(), c["dof"].as_f64().unwrap());
        close(
            stats::chi2_sf(x, dof),
            c["sf"].as_f64().unwrap(),
            &format!("chi2.sf({x}, {dof})"),
        );
    }
}

#[test]
fn jensen_shannon_matches_scipy() {
    for c in vectors()["jensenshannon"].as_array().unwrap() {
        let got = stats::jensen_shannon(&floats(&c["p"]), &floats(&c["q"]));
        close(
            got,
            c["distance"].as_f64().unwrap(),
            &format!("{} vs {}", c["p"], c["q"]),
        );
    }
}
