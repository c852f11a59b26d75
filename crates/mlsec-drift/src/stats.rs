//! The statistics behind drift decisions.
//!
//! Where scipy defines the same quantity, these follow its definition and its choice of method,
//! so the numbers agree to 1e-6 (`tests/it/scipy.rs` checks them against vectors scipy wrote):
//!
//! | here | scipy |
//! |---|---|
//! | [`ks_2samp`] | `scipy.stats.ks_2samp(a, b)` (two-sided, `method="auto"`) |
//! | [`chi2_contingency`] | `scipy.stats.chi2_contingency([ref, cur])` (Yates' correction when dof = 1) |
//! | [`wasserstein`] | `scipy.stats.wasserstein_distance(a, b)` |
//! | [`jensen_shannon`] | `scipy.spatial.distance.jensenshannon(p, q)` (natural log) |
//! | [`kolmogorov_sf`] | `scipy.stats.kstwo.sf(d, n)` |
//! | [`chi2_sf`] | `scipy.stats.chi2.sf(x, dof)` |
//!
//! [`psi`] (population stability index) has no scipy counterpart; it is the usual
//! `Σ (cur − ref) · ln(cur / ref)` over shares, with empty bins floored at [`PSI_FLOOR`].
//!
//! Samples given to the two-sample functions must be sorted ascending and free of NaN.

// Exact float comparisons here are the boundaries of the distributions (x == 0, x == 1, a
// standard error of exactly zero), as in scipy.
#![allow(clippy::float_cmp)]

/// Above this sample size (the larger of the two), [`ks_2samp`] uses the asymptotic
/// distribution, as scipy's `method="auto"` does.
pub const KS_EXACT_MAX_N: usize = 10_000;

/// Share given to an empty bin in [`psi`], so its logarithm stays finite.
pub const PSI_FLOOR: f64 = 1e-4;

/// Below this length [`sort`] uses a comparison sort.
const RADIX_MIN_LEN: usize = 1 << 12;

/// Sorts values ascending in `f64::total_cmp` order: an LSD radix sort on the order-preserving
/// integer image of each value (11-bit digits, passes whose digit is shared by every value
/// skipped), several times faster than a comparison sort on the columns drift compares.
pub fn sort(values: &mut Vec<f64>) {
    const SIGN: u64 = 1 << 63;
    if values.len() < RADIX_MIN_LEN {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let key = |x: f64| {
        let b = x.to_bits();
        if b & SIGN == 0 { b | SIGN } else { !b }
    };
    let unkey = |k: u64| f64::from_bits(if k & SIGN == 0 { !k } else { k & !SIGN });
    // Same size and alignment: this reuses the allocation.
    let mut keys: Vec<u64> = std::mem::take(values).into_iter().map(key).collect();
    let n = keys.len();
    let mut counts = vec![[0usize; 2048]; 6];
    for k in &keys {
        for (p, c) in counts.iter_mut().enumerate() {
            c[((k >> (11 * p)) & 0x7ff) as usize] += 1;
        }
    }
    let mut tmp = vec![0u64; n];
    for (p, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut offsets = [0usize; 2048];
        let mut sum = 0;
        for (o, x) in offsets.iter_mut().zip(c) {
            *o = sum;
            sum += x;
        }
        for &k in &keys {
            let d = ((k >> (11 * p)) & 0x7ff) as usize;
            tmp[offsets[d]] = k;
            offsets[d] += 1;
        }
        std::mem::swap(&mut keys, &mut tmp);
    }
    *values = keys.into_iter().map(unkey).collect();
}

/// A two-sided Kolmogorov–Smirnov result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// The largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// The probability of a distance at least this large if both samples share a distribution.
    pub p_value: f64,
}

/// Two-sample Kolmogorov–Smirnov test, two-sided. Both samples sorted; either may be empty
/// (then the result is `D = 0, p = 1`: nothing to compare).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Ks {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return Ks {
            statistic: 0.0,
            p_value: 1.0,
        };
    }
    // Walk both samples in order; after each distinct value the ECDF difference is
    // i/n1 - j/n2 = (i*n2 - j*n1) / (n1*n2), kept in integers so ties are exact.
    let (mut i, mut j) = (0usize, 0usize);
    let mut h_max: u128 = 0;
    while i < n1 && j < n2 {
        let v = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = (i as i128 * n2 as i128 - j as i128 * n1 as i128).unsigned_abs();
        h_max = h_max.max(diff);
    }
    let d = h_max as f64 / (n1 as f64 * n2 as f64);
    let p_value = ks_2samp_p(d, n1, n2);
    Ks {
        statistic: d,
        p_value,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The p-value of a two-sided two-sample KS distance `d` for sizes `n1`, `n2`.
pub fn ks_2samp_p(d: f64, n1: usize, n2: usize) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    if n1.max(n2) <= KS_EXACT_MAX_N
        && let Some(p) = ks_2samp_exact(d, n1 as u64, n2 as u64)
    {
        return p.clamp(0.0, 1.0);
    }
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = (m * n / (m + n)).round_ties_even();
    kolmogorov_sf(d, en as u64).clamp(0.0, 1.0)
}

/// Hodges' exact lattice-path count (scipy's `_attempt_exact_2kssamp`), or `None` where it
/// overflows and the asymptotic distribution must answer.
fn ks_2samp_exact(d: f64, n1: u64, n2: u64) -> Option<f64> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    if h == 0 {
        return Some(1.0);
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        outer_prob_inside(n1, n2, g, h)
    };
    (p.is_finite() && (0.0..=1.0).contains(&p)).then_some(p)
}

/// `Pr(D_{n,n} >= h/n)` by a Horner-like alternating sum (scipy's `_compute_prob_outside_square`).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        let mut j = 0.0;
        while j < h {
            p1 = (n - kf * h - j) * p1 / (n + kf * h + j + 1.0);
            j += 1.0;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The share of lattice paths that leave the band `|x/m - y/n| < h/lcm` (scipy's
/// `_compute_outer_prob_inside_method`, after Hodges and Viehmann).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let (m, n, mg, ng, h) = (m as i64, n as i64, mg as i64, ng as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { (a + b - 1).div_euclid(b) };
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = a
                .get((jj + minj - lastminj) as usize)
                .copied()
                .unwrap_or(1.0);
            val = (prev * fi + val * j as f64) / (fi + j as f64);
            if let Some(slot) = a.get_mut(jj as usize) {
                *slot = val;
            }
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = (from + (lastlen - curlen) as usize).min(a.len());
            for x in &mut a[from..to] {
                *x = 1.0;
            }
        }
    }
    a.get((maxj - minj - 1) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// `Pr(D_n >= x)` for the one-sample two-sided Kolmogorov statistic (scipy's `kstwo.sf`,
/// Simard and L'Ecuyer's choice of method by region).
pub fn kolmogorov_sf(x: f64, n: u64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |acc, i| acc * (i as f64 / nf) * (2.0 * t - 1.0))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let nxx = t * x;
    if n <= 140 {
        if nxx <= 4.0 {
            // scipy uses Pomeranz' recursion above 0.754693; the Durbin matrix is exact too.
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    if nxx >= 370.0 {
        return 0.0;
    }
    if nxx >= 2.2 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if nxx >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(nf, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// `ln(n! / n^n)` by Stirling's series, with `n ln n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const STIRLING: [f64; 8] = [
        -2.955_065_359_477_124e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_5e-3,
        8.417_508_417_508_417e-4,
        -5.952_380_952_380_952e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// `Pr(D_n <= d)` by the Durbin matrix (Marsaglia, Tsang and Wang's scaling).
fn durbin_cdf(n: u64, d: f64) -> f64 {
    const E: i32 = 128;
    let big = 2f64.powi(E);
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |x: &[f64], y: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for r in 0..m {
            for t in 0..m {
                let xv = x[r * m + t];
                if xv == 0.0 {
                    continue;
                }
                let row = &y[t * m..(t + 1) * m];
                for (o, yv) in out[r * m..(r + 1) * m].iter_mut().zip(row) {
                    *o += xv * yv;
                }
            }
        }
        out
    };
    let mut pwr = vec![0.0; m * m];
    for i in 0..m {
        pwr[i * m + i] = 1.0;
    }
    let (mut nn, mut expnt, mut hexpnt) = (n, 0i64, 0i64);
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = matmul(&pwr, &hm);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > big {
            for x in &mut hm {
                *x /= big;
            }
            hexpnt += i64::from(E);
        }
        nn /= 2;
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / big {
            p *= big;
            expnt -= i64::from(E);
        }
    }
    let p = p * 2f64.powi(expnt.clamp(-2000, 2000) as i32);
    p.clamp(0.0, 1.0)
}

/// Pelz and Good's asymptotic series for `Pr(D_n <= x)`.
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi2 = PI * PI;
    let (pi4, pi6) = (pi2 * pi2, pi2 * pi2 * pi2);
    let sqrt2pi = (2.0 * PI).sqrt();
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z * z * z, z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (kv, c) in k.iter_mut().zip(coeffs) {
            *kv = *kv * qpower + c;
        }
    }
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (kv, dv) in k.iter_mut().zip(div) {
        *kv = *kv * q * sqrt2pi / dv;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let ks2 = ks * ks;
        let qp = q.powf(ks2);
        let kspi = PI * ks;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    k.iter()
        .enumerate()
        .map(|(i, v)| v / n.powf(i as f64 / 2.0))
        .sum()
}

/// `Pr(D_n^+ >= x)`, the one-sided Smirnov statistic (the Birnbaum–Tingey sum, in logarithms).
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if x.is_nan() || !(0.0..=1.0).contains(&x) || n == 0 {
        return f64::NAN;
    }
    let nf = n as f64;
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    if x * nf <= 1.0 {
        // x <= 1/n: cdf = x (1 + x)^(n-1).
        return (1.0 - x * (1.0 + x).powf(nf - 1.0)).clamp(0.0, 1.0);
    }
    if -2.0 * nf * x * x < -745.0 {
        return 0.0;
    }
    if x >= 1.0 - 1.0 / nf {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        return (-(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf).exp();
    }
    // sf = x * Σ_{j=0}^{floor(n(1-x))} C(n,j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1); all terms
    // positive, summed until they no longer change the total.
    let last = (nf * (1.0 - x)).floor() as u64;
    let ln_n_fact = libm::lgamma(nf + 1.0);
    let mut sum = 0.0;
    for j in 0..=last {
        let jf = j as f64;
        let base = 1.0 - x - jf / nf;
        if base <= 0.0 {
            break;
        }
        let ln_c = ln_n_fact - libm::lgamma(jf + 1.0) - libm::lgamma(nf - jf + 1.0);
        let term = (ln_c + (nf - jf) * base.ln() + (jf - 1.0) * (x + jf / nf).ln()).exp();
        sum += term;
        if term < f64::EPSILON * sum * 1e-3 && jf > nf * x {
            break;
        }
    }
    (x * sum).clamp(0.0, 1.0)
}

/// A chi-squared test of homogeneity on a 2 × k table of counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2 {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: u64,
}

/// `scipy.stats.chi2_contingency([reference, current])`: expected counts from the margins,
/// Yates' continuity correction when there is one degree of freedom. Categories empty in both
/// rows are dropped first (scipy refuses a zero expected count).
pub fn chi2_contingency(reference: &[u64], current: &[u64]) -> Chi2 {
    let pairs: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .map(|(r, c)| (*r as f64, *c as f64))
        .collect();
    let (tr, tc): (f64, f64) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (r, c)| (a + r, b + c));
    let k = pairs.len() as u64;
    if k < 2 || tr == 0.0 || tc == 0.0 {
        return Chi2 {
            statistic: 0.0,
            p_value: 1.0,
            dof: 0,
        };
    }
    let dof = k - 1;
    let total = tr + tc;
    let mut stat = 0.0;
    for (r, c) in &pairs {
        let col = r + c;
        for (obs, row) in [(*r, tr), (*c, tc)] {
            let exp = row * col / total;
            let mut diff = obs - exp;
            if dof == 1 {
                diff = diff.signum() * (diff.abs() - 0.5).max(0.0);
            }
            stat += diff * diff / exp;
        }
    }
    Chi2 {
        statistic: stat,
        p_value: chi2_sf(stat, dof as f64),
        dof,
    }
}

/// `Pr(X >= x)` for chi-squared with `dof` degrees of freedom.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(dof / 2.0, x / 2.0)
}

/// The regularised upper incomplete gamma function `Q(a, x)`: a series below `a + 1`, Lentz's
/// continued fraction above.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_pre = a * x.ln() - x - libm::lgamma(a);
    if x < a + 1.0 {
        let (mut ap, mut del) = (a, 1.0 / a);
        let mut sum = del;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

/// The first Wasserstein (earth mover's) distance between two sorted samples.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    // Integrate |F_a - F_b| over the merged support.
    let (mut i, mut j) = (0usize, 0usize);
    let mut prev = a[0].min(b[0]);
    let mut total = 0.0;
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        total += (i as f64 / n1 - j as f64 / n2).abs() * (v - prev);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        prev = v;
    }
    total
}

/// The Jensen–Shannon distance (the square root of the divergence, natural log) between two
/// count or weight vectors over the same bins. Either all zero gives NaN, as in scipy.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let mut js = 0.0;
    for (x, y) in p.iter().zip(q) {
        let (x, y) = (x / sp, y / sq);
        let m = f64::midpoint(x, y);
        js += rel_entr(x, m) + rel_entr(y, m);
    }
    (js / 2.0).max(0.0).sqrt()
}

/// The population stability index between two count vectors over the same bins.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let (sr, sc): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    if sr == 0.0 || sc == 0.0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let r = (r / sr).max(PSI_FLOOR);
            let c = (c / sc).max(PSI_FLOOR);
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Two-sided p-value of a two-proportion z-test (pooled), for missing-value rates.
pub fn two_proportion_p(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return if p1 == p2 { 1.0 } else { 0.0 };
    }
    let z = (p1 - p2).abs() / se;
    libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Mean and population standard deviation (numpy's default `ddof=0`).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The value at quantile `q` of a sorted sample (linear interpolation, numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Counts of a sorted sample in the bins `(-inf, e0], (e0, e1], ..., (e_last, inf)`.
pub fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut start = 0;
    for e in edges {
        let end = start + sorted[start..].partition_point(|v| v <= e);
        counts.push((end - start) as f64);
        start = end;
    }
    counts.push((sorted.len() - start) as f64);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_do_not_differ() {
        let a: Vec<f64> = (0..500).map(f64::from).collect();
        let ks = ks_2samp(&a, &a);
        assert_eq!(ks.statistic, 0.0);
        assert_eq!(ks.p_value, 1.0);
        assert_eq!(wasserstein(&a, &a), 0.0);
        assert_eq!(psi(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(jensen_shannon(&[1.0, 2.0], &[2.0, 4.0]), 0.0);
    }

    #[test]
    fn disjoint_samples_differ_completely() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let b: Vec<f64> = (100..150).map(f64::from).collect();
        let ks = ks_2samp(&a, &b);
        assert_eq!(ks.statistic, 1.0);
        assert!(ks.p_value < 1e-20, "{}", ks.p_value);
        assert!((wasserstein(&a, &b) - 100.0).abs() < 1e-9);
        assert!((jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln().sqrt()).abs() < 1e-12);
    }

    #[test]
    fn radix_sort_agrees_with_total_cmp() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0usize, 1, 100, 5_000, 70_000] {
            let mut v: Vec<f64> = (0..n)
                .map(|i| match i % 5 {
                    0 => (next() % 1000) as f64 / 7.0 - 50.0,
                    1 => f64::from_bits(next() >> 2) * if i % 2 == 0 { 1.0 } else { -1.0 },
                    2 => -0.0,
                    3 => 0.0,
                    _ => 1e300 * (next() % 3) as f64 - 1e300,
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable_by(f64::total_cmp);
            sort(&mut v);
            assert!(
                v.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "n = {n}"
            );
            assert_eq!(v.len(), n);
        }
    }

    #[test]
    fn chi2_survival_matches_known_values() {
        // chi2.sf(3.841458820694124, 1) = 0.05; chi2.sf(18.307038053275146, 10) = 0.05.
        assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-12);
        assert!((chi2_sf(18.307_038_053_275_146, 10.0) - 0.05).abs() < 1e-12);
        assert!((chi2_sf(2.0, 2.0) - (-1.0f64).exp()).abs() < 1e-14);
    }

    #[test]
    fn kolmogorov_tails_are_monotone() {
        let mut last = 1.0;
        for i in 1..200 {
            let x = f64::from(i) / 400.0;
            let p = kolmogorov_sf(x, 5_000);
            assert!(p <= last + 1e-12, "x={x}: {p} > {last}");
            last = p;
        }
    }
}
