//! Dockerfiles through the deployment scanner: instruction splitting, stages, rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mlsec_scan_deploy::scan_dockerfile("Dockerfile", &String::from_utf8_lossy(data));
});
