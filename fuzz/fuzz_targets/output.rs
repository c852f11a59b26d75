//! Any bytes, cut anywhere, through the gateway's output checks as an event stream (redacting
//! secrets and personal data, watching for a planted canary), then as a whole body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_gateway::config::RouteKind;
use mlsec_gateway::output::{Action, OutputConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cfg: OutputConfig = toml::from_str(
        "secrets = \"redact\"\npii = \"redact\"\nsystem_prompt = \"block\"\nholdback = 16\n",
    )
    .expect("config");
    assert_eq!(cfg.secrets, Action::Redact);
    let mut body = serde_json::json!({"messages": [{"role": "system", "content": "Be brief."}]})
        .as_object()
        .cloned()
        .expect("object");
    let mut scan = cfg.begin(RouteKind::Chat, &mut body).expect("on");
    let step = usize::from(cut).max(1);
    for chunk in rest.chunks(step) {
        let _ = scan.chunk(chunk);
    }
    let _ = scan.finish();
    let mut whole = cfg.begin(RouteKind::Chat, &mut body).expect("on");
    let _ = whole.whole(rest);
});
