//! `mlsec guard check`: one verdict per input line, in order.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use mlsec_guard::{Detector, Source};

use crate::args::{GuardArgs, GuardCheckArgs, GuardCommand, GuardFormat, GuardInput, GuardSource};
use crate::{EXIT_ERROR, EXIT_FINDINGS};

pub fn run(args: &GuardArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        GuardCommand::Check(a) => check(a),
    }
}

/// One input line's text and source, or why it could not be read.
fn parse_line(line: &str, input: GuardInput, default: Source) -> Result<(String, Source), String> {
    match input {
        GuardInput::Text => Ok((line.to_owned(), default)),
        GuardInput::Jsonl => {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
            let text = v
                .get("text")
                .and_then(serde_json::Value::as_str)
                .ok_or("no string field `text`")?;
            let source = match v.get("source").and_then(serde_json::Value::as_str) {
                None => default,
                Some("user") => Source::User,
                Some("retrieved") => Source::Retrieved,
                Some(other) => {
                    return Err(format!(
                        "field `source` is `{other}`; expected `user` or `retrieved`"
                    ));
                }
            };
            Ok((text.to_owned(), source))
        }
    }
}

fn check(args: &GuardCheckArgs) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::builtin();
    if let (Some(model), Some(tokenizer)) = (&args.onnx, &args.tokenizer) {
        let tier = mlsec_guard::tier::Tier::load(model, tokenizer, args.onnx_label)
            .context("cannot load the second tier")?;
        detector = detector.with_tier(std::sync::Arc::new(tier), args.grey);
    }
    let default = match args.source {
        GuardSource::User => Source::User,
        GuardSource::Retrieved => Source::Retrieved,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut flagged, mut failed) = (false, false);
    let stdin_only = args.files.is_empty();
    let inputs: Vec<Option<&std::path::Path>> = if stdin_only {
        vec![None]
    } else {
        args.files
            .iter()
            .map(|p| (p.as_os_str() != "-").then_some(p.as_path()))
            .collect()
    };
    for input in inputs {
        let (label, reader): (String, Box<dyn BufRead>) = match input {
            None => ("<stdin>".into(), Box::new(io::stdin().lock())),
            Some(p) => (
                p.display().to_string(),
                Box::new(io::BufReader::new(
                    fs_err::File::open(p).with_context(|| "cannot open guard input")?,
                )),
            ),
        };
        for (i, line) in reader.split(b'\n').enumerate() {
            let bytes = line.with_context(|| format!("{label}: cannot read"))?;
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
            let parsed = match std::str::from_utf8(bytes) {
                Ok(s) => parse_line(s, args.input, default),
                Err(e) => Err(format!("not UTF-8: {e}")),
            };
            match parsed {
                Ok((text, source)) => {
                    let v = detector.check(&text, source);
                    flagged |= v.injection;
                    match args.format {
                        GuardFormat::Json => {
                            serde_json::to_writer(&mut out, &v)?;
                            writeln!(out)?;
                        }
                        GuardFormat::Text => {
                            let word = if v.injection { "INJECTION" } else { "ok" };
                            writeln!(out, "{word} {:.3} {}", v.score, v.reasons.join(","))?;
                        }
                    }
                }
                Err(why) => {
                    // The line keeps its place in the output, and the error names it.
                    failed = true;
                    let msg = format!("{label}:{}: {why}", i + 1);
                    let _ = writeln!(io::stderr(), "mlsec: error: {msg}");
                    match args.format {
                        GuardFormat::Json => {
                            serde_json::to_writer(&mut out, &serde_json::json!({ "error": msg }))?;
                            writeln!(out)?;
                        }
                        GuardFormat::Text => writeln!(out, "ERROR {msg}")?,
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else if flagged {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
