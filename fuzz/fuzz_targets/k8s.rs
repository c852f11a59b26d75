//! YAML manifests through the deployment scanner: the YAML tree (depth, alias budget), pod-spec
//! views, suppression comments and the repository rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    let _ = mlsec_scan_deploy::scan_yaml_set(&[("deploy/app.yaml", &src)]);
});
