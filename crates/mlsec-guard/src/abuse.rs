//! Abuse and model-extraction signals over one principal's recent requests.
//!
//! Each request becomes an [`Event`]: when it came, a hash of its prompt, a MinHash signature of
//! the prompt's words, whether it asked for bulk model internals (log-probabilities, large
//! embedding batches), and, for classifier and prediction endpoints, its numeric input. A
//! [`Window`] keeps the last [`MAX_EVENTS`] of them within `window_secs`, and [`Window::push`]
//! returns the [`Features`] with the new event counted:
//!
//! * `rate`: requests in the window, and the share of distinct prompts (scraping is many distinct
//!   prompts, fast);
//! * `sweep`: the share of prompts that are near-duplicates (MinHash estimate of word-shingle
//!   Jaccard similarity at least [`NEAR_DUPLICATE`]) but not copies of one of the previous
//!   [`COMPARE_LAST`] prompts: a template with one slot changed, again and again;
//! * `bulk`: the share asking for log-probabilities or large embedding batches;
//! * PRADA (Juuti et al., 2019): for numeric inputs, the distance from each query to the
//!   nearest earlier one. Natural queries give distances close to normally distributed;
//!   extraction attacks (synthetic queries around seeds, grid sweeps) do not. The Shapiro–Wilk
//!   statistic W of the distances is the signal (low W: an attack).
//!
//! [`Limits::signals`] turns features into named signals. Nothing here keeps prompts: a hash and
//! a signature are all an event holds.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Events kept per principal.
pub const MAX_EVENTS: usize = 256;
/// MinHash values per signature.
pub const SIG_LEN: usize = 16;
/// Earlier prompts a new one is compared with.
pub const COMPARE_LAST: usize = 32;
/// Estimated Jaccard similarity from which two prompts are near-duplicates.
pub const NEAR_DUPLICATE: f32 = 0.5;
/// Numbers kept of a numeric input.
pub const MAX_DIMS: usize = 64;
/// Distances kept for the PRADA test.
pub const MAX_DISTANCES: usize = 128;

/// One request, as the window keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds (any fixed origin; the same for every event of a window).
    pub t_ms: u64,
    /// A hash of the whole prompt (0: no prompt).
    pub prompt: u64,
    /// MinHash of the prompt's word shingles (empty: no prompt).
    pub sig: Vec<u32>,
    /// Asked for log-probabilities or a large embedding batch.
    pub bulk: bool,
    /// A classifier or prediction input (at most [`MAX_DIMS`] numbers).
    pub point: Vec<f32>,
    /// Set by [`Window::push`]: a near-duplicate of a recent prompt, not a copy.
    #[serde(default)]
    pub near_dup: bool,
    /// Set by [`Window::push`]: distance to the nearest earlier point of the same size.
    #[serde(default)]
    pub min_dist: Option<f32>,
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Event {
    /// An event for a prompt (may be empty) at `t_ms`.
    pub fn new(t_ms: u64, prompt: &str, bulk: bool, point: Vec<f32>) -> Event {
        let mut point = point;
        point.truncate(MAX_DIMS);
        let trimmed = prompt.trim();
        if trimmed.is_empty() {
            return Event {
                t_ms,
                prompt: 0,
                sig: Vec::new(),
                bulk,
                point,
                near_dup: false,
                min_dist: None,
            };
        }
        Event {
            t_ms,
            prompt: fnv(trimmed.as_bytes(), 0).max(1),
            sig: minhash(trimmed),
            bulk,
            point,
            near_dup: false,
            min_dist: None,
        }
    }
}

/// MinHash of a text's words and word pairs (lowercase), [`SIG_LEN`] values.
pub fn minhash(text: &str) -> Vec<u32> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(4096)
        .map(str::to_lowercase)
        .collect();
    let mut shingles: Vec<u64> = words.iter().map(|w| fnv(w.as_bytes(), 1)).collect();
    shingles.extend(
        words
            .windows(2)
            .map(|p| fnv(p[1].as_bytes(), fnv(p[0].as_bytes(), 2))),
    );
    if shingles.is_empty() {
        shingles.push(fnv(text.as_bytes(), 3));
    }
    (0..SIG_LEN as u64)
        .map(|j| {
            let seed = mix(j.wrapping_add(0x9e37_79b9_7f4a_7c15));
            shingles
                .iter()
                .map(|&s| (mix(s ^ seed) >> 32) as u32)
                .min()
                .unwrap_or(u32::MAX)
        })
        .collect()
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f32 / a.len() as f32
}

/// Φ⁻¹, the standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn norm_ppf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The Shapiro–Wilk W statistic (Royston's 1992 coefficients, as scipy's `shapiro` computes them),
/// for 3 to 5000 values. `None` for fewer than 3 values or no spread (all values equal).
pub fn shapiro_wilk(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if !(3..=5000).contains(&n) {
        return None;
    }
    let mut x: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if x.len() != n {
        return None;
    }
    x.sort_by(f64::total_cmp);
    let mean = x.iter().sum::<f64>() / n as f64;
    let ss: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    if ss <= f64::EPSILON * mean.abs().max(1.0) {
        return None;
    }
    if n == 3 {
        let a = std::f64::consts::FRAC_1_SQRT_2;
        let b = a * (x[2] - x[0]);
        return Some((b * b / ss).clamp(0.75, 1.0));
    }
    let a = coefficients(n);
    let b: f64 = a.iter().zip(&x).map(|(ai, xi)| ai * xi).sum();
    Some((b * b / ss).min(1.0))
}

/// Royston's coefficients for `n` values (4 to 5000), computed once per `n`: they depend on
/// nothing else.
fn coefficients(n: usize) -> std::sync::Arc<Vec<f64>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Vec<f64>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(a) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&n)
    {
        return a.clone();
    }
    let nf = n as f64;
    let m: Vec<f64> = (1..=n)
        .map(|i| norm_ppf((i as f64 - 0.375) / (nf + 0.25)))
        .collect();
    let mm: f64 = m.iter().map(|v| v * v).sum();
    let u = 1.0 / nf.sqrt();
    let poly = |c: [f64; 6]| ((((c[0] * u + c[1]) * u + c[2]) * u + c[3]) * u + c[4]) * u + c[5];
    let mut a = vec![0.0; n];
    let an =
        poly([-2.706_056, 4.434_685, -2.071_19, -0.147_981, 0.221_157, 0.0]) + m[n - 1] / mm.sqrt();
    if n > 5 {
        let an1 = poly([
            -3.582_633, 5.682_633, -1.752_461, -0.293_762, 0.042_981, 0.0,
        ]) + m[n - 2] / mm.sqrt();
        let eps = (mm - 2.0 * m[n - 1].powi(2) - 2.0 * m[n - 2].powi(2))
            / (1.0 - 2.0 * an.powi(2) - 2.0 * an1.powi(2));
        for i in 2..n - 2 {
            a[i] = m[i] / eps.sqrt();
        }
        a[n - 1] = an;
        a[n - 2] = an1;
        a[0] = -an;
        a[1] = -an1;
    } else {
        let eps = (mm - 2.0 * m[n - 1].powi(2)) / (1.0 - 2.0 * an.powi(2));
        for i in 1..n - 1 {
            a[i] = m[i] / eps.sqrt();
        }
        a[n - 1] = an;
        a[0] = -an;
    }
    let a = Arc::new(a);
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(n, a.clone());
    a
}

/// What the window shows, with the newest event counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Features {
    /// Requests in the window.
    pub requests: usize,
    /// Distinct prompts / requests with a prompt.
    pub unique_ratio: f32,
    /// Near-duplicate prompts / requests with a prompt.
    pub sweep_ratio: f32,
    /// Bulk requests / requests.
    pub bulk_ratio: f32,
    /// Distances in the PRADA test.
    pub points: usize,
    /// Shapiro–Wilk W of the distances (`None`: too few, or all equal).
    pub prada_w: Option<f32>,
}

/// Running counts over a window's events, so a push costs the same whatever the window holds.
#[derive(Debug, Clone, Default)]
struct Counts {
    prompts: HashMap<u64, u32>,
    with_prompt: usize,
    near_dup: usize,
    bulk: usize,
}

impl Counts {
    fn add(&mut self, e: &Event) {
        if e.prompt != 0 {
            *self.prompts.entry(e.prompt).or_default() += 1;
            self.with_prompt += 1;
            self.near_dup += usize::from(e.near_dup);
        }
        self.bulk += usize::from(e.bulk);
    }
    fn remove(&mut self, e: &Event) {
        if e.prompt != 0 {
            if let Some(n) = self.prompts.get_mut(&e.prompt) {
                *n -= 1;
                if *n == 0 {
                    self.prompts.remove(&e.prompt);
                }
            }
            self.with_prompt -= 1;
            self.near_dup -= usize::from(e.near_dup);
        }
        self.bulk -= usize::from(e.bulk);
    }
}

/// The events of one principal.
#[derive(Debug, Clone, Default)]
pub struct Window {
    events: VecDeque<Event>,
    counts: Counts,
}

impl Window {
    /// A window holding `events` (oldest first), as a shared store returns them.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Window {
        let mut w = Window::default();
        for e in events {
            w.counts.add(&e);
            w.events.push_back(e);
        }
        w
    }

    /// The events held, oldest first.
    pub fn events(&self) -> &VecDeque<Event> {
        &self.events
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.counts.remove(&e);
        }
    }

    /// Adds `e` (setting its near-duplicate flag and nearest distance), drops what is older
    /// than `window_ms` before it or beyond [`MAX_EVENTS`], and returns the features.
    pub fn push(&mut self, mut e: Event, window_ms: u64) -> Features {
        let since = e.t_ms.saturating_sub(window_ms);
        while self.events.front().is_some_and(|x| x.t_ms < since) {
            self.pop_front();
        }
        if !e.sig.is_empty() {
            e.near_dup = self
                .events
                .iter()
                .rev()
                .take(COMPARE_LAST)
                .any(|x| x.prompt != e.prompt && similarity(&x.sig, &e.sig) >= NEAR_DUPLICATE);
        }
        if !e.point.is_empty() {
            e.min_dist = self
                .events
                .iter()
                .filter(|x| x.point.len() == e.point.len())
                .map(|x| {
                    x.point
                        .iter()
                        .zip(&e.point)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>()
                        .sqrt()
                })
                .filter(|d| d.is_finite())
                .reduce(f32::min);
        }
        self.counts.add(&e);
        self.events.push_back(e);
        while self.events.len() > MAX_EVENTS {
            self.pop_front();
        }
        self.features()
    }

    /// The features of the events held.
    pub fn features(&self) -> Features {
        let c = &self.counts;
        let requests = self.events.len();
        let ratio = |k: usize, of: usize| if of == 0 { 0.0 } else { k as f32 / of as f32 };
        let dists: Vec<f64> = self
            .events
            .iter()
            .rev()
            .filter_map(|e| e.min_dist)
            .map(f64::from)
            .take(MAX_DISTANCES)
            .collect();
        Features {
            requests,
            unique_ratio: ratio(c.prompts.len(), c.with_prompt),
            sweep_ratio: ratio(c.near_dup, c.with_prompt),
            bulk_ratio: ratio(c.bulk, requests),
            points: dists.len(),
            prada_w: shapiro_wilk(&dists).map(|w| w as f32),
        }
    }
}

/// When features become signals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// More requests than this in the window, mostly distinct (`unique_ratio` at least 0.8):
    /// scraping.
    pub scrape_requests: usize,
    /// Requests in the window before the share signals are judged.
    pub min_requests: usize,
    /// Near-duplicate share from which a templated sweep is signalled.
    pub sweep_ratio: f32,
    /// Bulk share from which bulk extraction is signalled.
    pub bulk_ratio: f32,
    /// Distances needed before the PRADA test is judged.
    pub min_points: usize,
    /// PRADA: W below this signals extraction.
    pub prada_w: f32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            scrape_requests: 300,
            min_requests: 20,
            sweep_ratio: 0.6,
            bulk_ratio: 0.5,
            min_points: 30,
            prada_w: 0.9,
        }
    }
}

/// A named signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Scraping,
    TemplatedSweep,
    BulkExtraction,
    Prada,
}

impl Signal {
    pub fn code(self) -> &'static str {
        match self {
            Signal::Scraping => "scraping",
            Signal::TemplatedSweep => "templated_sweep",
            Signal::BulkExtraction => "bulk_extraction",
            Signal::Prada => "prada",
        }
    }
}

impl Limits {
    /// The signals the features raise.
    pub fn signals(&self, f: &Features) -> Vec<Signal> {
        let mut out = Vec::new();
        if f.requests > self.scrape_requests && f.unique_ratio >= 0.8 {
            out.push(Signal::Scraping);
        }
        if f.requests >= self.min_requests {
            if f.sweep_ratio >= self.sweep_ratio {
                out.push(Signal::TemplatedSweep);
            }
            if f.bulk_ratio >= self.bulk_ratio {
                out.push(Signal::BulkExtraction);
            }
        }
        if f.points >= self.min_points
            && let Some(w) = f.prada_w
            && w < self.prada_w
        {
            out.push(Signal::Prada);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), and Box–Muller normals.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.next().max(1e-12), self.next());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    #[test]
    fn shapiro_wilk_matches_scipy() {
        // scipy.stats.shapiro on the same values (the command is beside the constants).
        let x = [
            2.1, 3.4, 1.9, 5.6, 4.4, 3.3, 2.8, 3.9, 4.1, 3.0, 2.5, 6.8, 3.6, 3.2, 2.9,
        ];
        let w = shapiro_wilk(&x).expect("w");
        assert!((w - SCIPY_W_15).abs() < 1e-6, "{w}");
        let y = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
        let w = shapiro_wilk(&y).expect("w");
        assert!((w - SCIPY_W_POW2).abs() < 1e-6, "{w}");
        assert_eq!(shapiro_wilk(&[1.0, 1.0, 1.0, 1.0]), None);
        assert_eq!(shapiro_wilk(&[1.0, 2.0]), None);
    }

    // scipy 1.17.1: python3 -c "from scipy.stats import shapiro; print(shapiro([2.1,3.4,1.9,5.6,4.4,3.3,2.8,3.9,4.1,3.0,2.5,6.8,3.6,3.2,2.9]).statistic, shapiro([1,2,4,8,16,32,64,128]).statistic)"
    const SCIPY_W_15: f64 = 0.905_250_012_276_537_9;
    const SCIPY_W_POW2: f64 = 0.755_635_694_931_783_3;

    #[test]
    fn normal_ppf_is_accurate() {
        assert!(norm_ppf(0.5).abs() < 1e-9);
        assert!((norm_ppf(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((norm_ppf(0.001) + 3.090_232_306_167_813_5).abs() < 1e-8);
    }

    #[test]
    fn templated_prompts_are_near_duplicates_and_varied_ones_are_not() {
        let a = minhash("What is the capital of France? Answer in one word.");
        let b = minhash("What is the capital of Peru? Answer in one word.");
        let c = minhash("Write a haiku about autumn leaves falling on a pond.");
        assert!(
            similarity(&a, &b) >= NEAR_DUPLICATE,
            "{}",
            similarity(&a, &b)
        );
        assert!(similarity(&a, &c) < 0.2, "{}", similarity(&a, &c));
    }

    fn topics() -> Vec<String> {
        let subjects = [
            "my tax return",
            "a birthday party",
            "the rust borrow checker",
            "sourdough bread",
            "a job interview",
            "kubernetes ingress",
            "my cat's diet",
            "a trip to Lisbon",
            "learning the piano",
            "solar panels",
            "a wedding speech",
            "SQL joins",
        ];
        let asks = [
            "Can you help me plan",
            "What should I know about",
            "Give me three tips on",
            "Explain like I'm five:",
            "I am worried about",
            "Write a short note about",
        ];
        let mut out = Vec::new();
        for (i, s) in subjects.iter().enumerate() {
            for (j, a) in asks.iter().enumerate() {
                if (i + j) % 2 == 0 {
                    out.push(format!("{a} {s}? I have {} minutes.", 5 + i * 7 + j));
                }
            }
        }
        out
    }

    #[test]
    fn a_templated_sweep_is_signalled_and_varied_chat_is_not() {
        let limits = Limits::default();
        let mut w = Window::default();
        let mut last = Features::default();
        for (i, p) in topics().iter().enumerate() {
            last = w.push(Event::new(i as u64 * 2000, p, false, vec![]), 60_000);
            assert!(limits.signals(&last).is_empty(), "{p}: {last:?}");
        }
        assert!(last.requests >= 20, "{last:?}");

        let mut w = Window::default();
        let countries = [
            "France", "Peru", "Chad", "Laos", "Fiji", "Oman", "Mali", "Cuba",
        ];
        let mut fired = false;
        for i in 0..40 {
            let p = format!(
                "Classify the sentiment of this review: 'The {} hotel was {}'. Answer with one label.",
                countries[i % 8],
                ["fine", "awful", "great", "ok", "dirty"][i % 5]
            );
            let f = w.push(Event::new(i as u64 * 500, &p, false, vec![]), 60_000);
            fired |= limits.signals(&f).contains(&Signal::TemplatedSweep);
        }
        assert!(fired, "{:?}", w.features());
    }

    #[test]
    fn scraping_and_bulk_logprobs_are_signalled() {
        let limits = Limits {
            scrape_requests: 50,
            ..Limits::default()
        };
        let mut w = Window::default();
        let mut signals = Vec::new();
        for (i, p) in topics().iter().cycle().take(36).enumerate() {
            let f = w.push(
                Event::new(i as u64 * 100, &format!("{p} #{i}"), true, vec![]),
                60_000,
            );
            signals = limits.signals(&f);
        }
        assert!(signals.contains(&Signal::BulkExtraction), "{signals:?}");
        assert!(!signals.contains(&Signal::Scraping), "{signals:?}");
        for i in 36..60 {
            let f = w.push(
                Event::new(
                    i * 100,
                    &format!("page {i} of the catalogue, item {}", i * 31),
                    false,
                    vec![],
                ),
                60_000,
            );
            signals = limits.signals(&f);
        }
        assert!(signals.contains(&Signal::Scraping), "{signals:?}");
        // The window forgets: a minute later the principal starts clean.
        let f = w.push(Event::new(200_000, "hello", false, vec![]), 60_000);
        assert_eq!(f.requests, 1);
    }

    #[test]
    fn prada_separates_natural_queries_from_an_extraction_sweep() {
        let limits = Limits::default();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut natural = Window::default();
        for i in 0..120u64 {
            let p: Vec<f32> = (0..6).map(|_| rng.normal() as f32).collect();
            natural.push(Event::new(i * 100, "", false, p), 600_000);
        }
        let f = natural.features();
        assert!(limits.signals(&f).is_empty(), "natural queries: {f:?}");

        // Extraction in the manner of Papernot et al.: a few seed inputs, then small steps
        // along each feature around each seed.
        let mut attack = Window::default();
        let seeds: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..6).map(|_| rng.normal() as f32).collect())
            .collect();
        let mut t = 0;
        for s in &seeds {
            attack.push(Event::new(t, "", false, s.clone()), 600_000);
            t += 100;
        }
        for round in 0..5 {
            for s in &seeds {
                for d in 0..6 {
                    let mut p = s.clone();
                    p[d] += 0.05 * (round + 1) as f32;
                    attack.push(Event::new(t, "", false, p), 600_000);
                    t += 100;
                }
            }
        }
        let f = attack.features();
        assert!(limits.signals(&f).contains(&Signal::Prada), "sweep: {f:?}");
    }

    proptest::proptest! {
        /// Any prompts, inputs and times: no panic, and ratios stay ratios.
        #[test]
        fn any_events_never_panic(
            items in proptest::collection::vec(
                (".{0,200}", proptest::collection::vec(proptest::num::f32::ANY, 0..8), proptest::prelude::any::<bool>(), 0u64..10_000),
                0..80,
            )
        ) {
            let mut w = Window::default();
            let mut t = 0u64;
            for (p, point, bulk, dt) in items {
                t += dt;
                let f = w.push(Event::new(t, &p, bulk, point), 60_000);
                for r in [f.unique_ratio, f.sweep_ratio, f.bulk_ratio] {
                    proptest::prop_assert!((0.0..=1.0).contains(&r));
                }
                if let Some(x) = f.prada_w {
                    proptest::prop_assert!(x.is_finite() && x <= 1.0);
                }
                let _ = Limits::default().signals(&f);
            }
        }
    }
}
