//! Median time of `Detector::check` per input line, in process (no I/O in the timing):
//! `cargo run --release -p mlsec-guard --example latency -- FILE` (one prompt per line).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use mlsec_guard::{Detector, Source};

fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let d = Detector::builtin();
    let mut flagged = 0;
    for l in &lines {
        flagged += usize::from(d.check(l, Source::User).injection);
    }
    let mut times = Vec::with_capacity(lines.len() * 3);
    for _ in 0..3 {
        for l in &lines {
            let t = Instant::now();
            let v = d.check(l, Source::User);
            times.push(t.elapsed().as_nanos() as u64);
            std::hint::black_box(v);
        }
    }
    times.sort_unstable();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "{} inputs, mean {} bytes: median {:.1} µs, p99 {:.1} µs per input; {flagged} flagged",
        lines.len(),
        bytes / lines.len().max(1),
        times[times.len() / 2] as f64 / 1e3,
        times[times.len() * 99 / 100] as f64 / 1e3
    );
    if std::env::var_os("PARTS").is_some() {
        let mut acc = [0u128; 4];
        let m = mlsec_guard::model::Model::embedded();
        for l in &lines {
            let t = Instant::now();
            let f = mlsec_guard::normalize::fold(l);
            acc[0] += t.elapsed().as_nanos();
            let t = Instant::now();
            let h = mlsec_guard::phrases::hits(&f.plain, &f.folded);
            acc[1] += t.elapsed().as_nanos();
            let t = Instant::now();
            let p = mlsec_guard::decode::payloads(l);
            acc[2] += t.elapsed().as_nanos();
            let t = Instant::now();
            let s = m.best_window(&f.folded);
            acc[3] += t.elapsed().as_nanos();
            std::hint::black_box((h, p, s));
        }
        let n = lines.len() as f64 * 1e3;
        println!(
            "mean µs: fold {:.1}, phrases {:.1}, decode {:.1}, model {:.1}",
            acc[0] as f64 / n,
            acc[1] as f64 / n,
            acc[2] as f64 / n,
            acc[3] as f64 / n
        );
    }
}
