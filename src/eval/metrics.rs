//! facenet's verification metrics (`facenet.py` calculate_roc / calculate_val, `validate_on_lfw.py` AUC and
//! EER), reproduced decision for decision: thresholds `0..4` by 0.01 (accuracy, ROC) and by 0.001 (VAL),
//! scikit-learn's `KFold(shuffle=False)` folds, the first best threshold on the training folds, the optional
//! mean subtraction computed on the training folds, SciPy's `slinear` interpolation of the threshold at the
//! target FAR (0 when the FAR never reaches it), the trapezoid AUC and the EER root.

use std::ops::Range;

/// How two embeddings are compared (facenet's `--distance_metric` 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DistanceMetric {
    /// Squared Euclidean distance.
    Euclidean,
    /// `arccos(cosine similarity) / pi`.
    Cosine,
}

impl std::str::FromStr for DistanceMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "euclidean" | "0" => Ok(Self::Euclidean),
            "cosine" | "1" => Ok(Self::Cosine),
            _ => Err(format!("unknown distance metric '{s}': expected euclidean (0) or cosine (1)")),
        }
    }
}

/// The distance between two embeddings, each shifted by `-mean`.
pub fn distance(a: &[f32], b: &[f32], mean: &[f64], metric: DistanceMetric) -> f64 {
    let shifted = |v: &[f32], i: usize| v[i] as f64 - mean.get(i).copied().unwrap_or(0.0);
    match metric {
        DistanceMetric::Euclidean => (0..a.len()).map(|i| (shifted(a, i) - shifted(b, i)).powi(2)).sum(),
        DistanceMetric::Cosine => {
            let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
            for i in 0..a.len() {
                let (x, y) = (shifted(a, i), shifted(b, i));
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
            // Rounding can push the similarity a hair past 1; numpy would return NaN there.
            (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0).acos() / std::f64::consts::PI
        }
    }
}

/// `np.arange(0, 4, step)`: `start + i * step` for every value below 4.
pub fn thresholds(step: f64) -> Vec<f64> {
    let n = (4.0 / step).ceil() as usize;
    (0..n).map(|i| i as f64 * step).filter(|&t| t < 4.0).collect()
}

/// The test ranges of scikit-learn's `KFold(n_splits=k, shuffle=False)` over `n` items: contiguous blocks,
/// the first `n % k` of them one longer.
pub fn kfold(n: usize, k: usize) -> Vec<Range<usize>> {
    let k = k.max(1);
    let mut out = Vec::with_capacity(k);
    let mut start = 0;
    for f in 0..k {
        let len = n / k + usize::from(f < n % k);
        out.push(start..start + len);
        start += len;
    }
    out
}

/// `(tpr, fpr, accuracy)` of predicting "same" where `dist < threshold`, over `idx`.
fn accuracy_at(threshold: f64, dist: &[f64], same: &[bool], idx: &[usize]) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut tn, mut fnn) = (0usize, 0usize, 0usize, 0usize);
    for &i in idx {
        match (dist[i] < threshold, same[i]) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fnn += 1,
        }
    }
    let tpr = if tp + fnn == 0 { 0.0 } else { tp as f64 / (tp + fnn) as f64 };
    let fpr = if fp + tn == 0 { 0.0 } else { fp as f64 / (fp + tn) as f64 };
    (tpr, fpr, (tp + tn) as f64 / idx.len().max(1) as f64)
}

/// The first of `thresholds` with the best accuracy of predicting "same" where `dist < threshold` over all
/// pairs (facenet's rule, `np.argmax`), and that accuracy.
pub fn best_threshold(thresholds: &[f64], dist: &[f64], same: &[bool]) -> (f64, f64) {
    let all: Vec<usize> = (0..dist.len()).collect();
    thresholds.iter().map(|&t| (t, accuracy_at(t, dist, same, &all).2)).fold((0.0, -1.0), |best, x| if x.1 > best.1 { x } else { best })
}

/// `(val, far)` at a threshold over `idx`: the accepted fractions of same and of different pairs (0 where
/// a fold has none of one kind; facenet divides by zero there).
fn val_far(threshold: f64, dist: &[f64], same: &[bool], idx: &[usize]) -> (f64, f64) {
    let (mut ta, mut fa, mut n_same, mut n_diff) = (0usize, 0usize, 0usize, 0usize);
    for &i in idx {
        let accept = dist[i] < threshold;
        if same[i] {
            n_same += 1;
            ta += usize::from(accept);
        } else {
            n_diff += 1;
            fa += usize::from(accept);
        }
    }
    let frac = |a: usize, n: usize| if n == 0 { 0.0 } else { a as f64 / n as f64 };
    (frac(ta, n_same), frac(fa, n_diff))
}

/// Per fold: the training indices, the test indices and the distances of every pair (after subtracting
/// the training folds' mean embedding when asked).
fn folds(
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    k: usize,
    metric: DistanceMetric,
    subtract_mean: bool,
) -> Vec<(Vec<usize>, Vec<usize>, Vec<f64>)> {
    let n = e1.len().min(e2.len());
    let dim = e1.first().map_or(0, Vec::len);
    kfold(n, k)
        .into_iter()
        .map(|test| {
            let train: Vec<usize> = (0..n).filter(|i| !test.contains(i)).collect();
            let mut mean = vec![0.0; if subtract_mean { dim } else { 0 }];
            if subtract_mean && !train.is_empty() {
                for &i in &train {
                    for (d, m) in mean.iter_mut().enumerate() {
                        *m += e1[i][d] as f64 + e2[i][d] as f64;
                    }
                }
                mean.iter_mut().for_each(|m| *m /= (2 * train.len()) as f64);
            }
            let dist = (0..n).map(|i| distance(&e1[i], &e2[i], &mean, metric)).collect();
            (train, test.collect(), dist)
        })
        .collect()
}

/// facenet's `calculate_roc`: the fold-averaged ROC over `thresholds`, each fold's test accuracy at the
/// best training threshold, and those thresholds.
pub struct Roc {
    pub tpr: Vec<f64>,
    pub fpr: Vec<f64>,
    pub accuracy: Vec<f64>,
    pub best_thresholds: Vec<f64>,
}

pub fn calculate_roc(
    thresholds: &[f64],
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    same: &[bool],
    k: usize,
    metric: DistanceMetric,
    subtract_mean: bool,
) -> Roc {
    let nt = thresholds.len();
    let (mut tpr, mut fpr) = (vec![0.0; nt], vec![0.0; nt]);
    let (mut accuracy, mut best_thresholds) = (Vec::new(), Vec::new());
    let all = folds(e1, e2, k, metric, subtract_mean);
    for (train, test, dist) in &all {
        // np.argmax: the first threshold with the best training accuracy.
        let mut best = 0;
        let mut best_acc = f64::NEG_INFINITY;
        for (t, &th) in thresholds.iter().enumerate() {
            let acc = accuracy_at(th, dist, same, train).2;
            if acc > best_acc {
                best_acc = acc;
                best = t;
            }
        }
        for (t, &th) in thresholds.iter().enumerate() {
            let (tp, fp, _) = accuracy_at(th, dist, same, test);
            tpr[t] += tp;
            fpr[t] += fp;
        }
        accuracy.push(accuracy_at(thresholds[best], dist, same, test).2);
        best_thresholds.push(thresholds[best]);
    }
    // np.mean over the folds: sum, then divide (so ten folds at FPR 1 average to exactly 1).
    let k = all.len().max(1) as f64;
    tpr.iter_mut().chain(fpr.iter_mut()).for_each(|v| *v /= k);
    Roc { tpr, fpr, accuracy, best_thresholds }
}

/// SciPy's `interp1d(far, thresholds, kind='slinear')(target)` for a non-decreasing `far`: linear between
/// the last point with `far <= target` and the next one.
fn threshold_at_far(far: &[f64], thresholds: &[f64], target: f64) -> f64 {
    let i = far.iter().rposition(|&f| f <= target).unwrap_or(0);
    if i + 1 >= far.len() || far[i] == target {
        return thresholds[i];
    }
    let (x0, x1) = (far[i], far[i + 1]);
    thresholds[i] + (target - x0) * (thresholds[i + 1] - thresholds[i]) / (x1 - x0)
}

/// facenet's `calculate_val`: `(val mean, val std, far mean)` at the threshold where the training folds'
/// FAR equals `far_target` (threshold 0 in a fold whose FAR never reaches it).
#[allow(clippy::too_many_arguments)]
pub fn calculate_val(
    thresholds: &[f64],
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    same: &[bool],
    far_target: f64,
    k: usize,
    metric: DistanceMetric,
    subtract_mean: bool,
) -> (f64, f64, f64) {
    let (mut vals, mut fars) = (Vec::new(), Vec::new());
    for (train, test, dist) in folds(e1, e2, k, metric, subtract_mean) {
        let far_train: Vec<f64> = thresholds.iter().map(|&t| val_far(t, &dist, same, &train).1).collect();
        let max = far_train.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let threshold = if max >= far_target { threshold_at_far(&far_train, thresholds, far_target) } else { 0.0 };
        let (v, f) = val_far(threshold, &dist, same, &test);
        vals.push(v);
        fars.push(f);
    }
    let (vm, vs) = mean_std(&vals);
    (vm, vs, mean_std(&fars).0)
}

/// Mean and population standard deviation (`np.std`).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt())
}

/// `sklearn.metrics.auc(fpr, tpr)`: the trapezoid area under a monotonic curve.
pub fn auc(fpr: &[f64], tpr: &[f64]) -> f64 {
    fpr.windows(2).zip(tpr.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0).sum::<f64>().abs()
}

/// SciPy's `interp1d(x, y)(at)` (linear, `x` non-decreasing): the segment found by `searchsorted` (left),
/// clipped to the first and last segments.
fn interp_linear(x: &[f64], y: &[f64], at: f64) -> f64 {
    let idx = x.partition_point(|&v| v < at).clamp(1, x.len() - 1);
    let (x0, x1, y0, y1) = (x[idx - 1], x[idx], y[idx - 1], y[idx]);
    (y1 - y0) / (x1 - x0) * (at - x0) + y0
}

/// The equal error rate, the root of `1 - x - tpr(x)` on `[0, 1]` with `tpr` interpolated over `fpr`
/// (validate_on_lfw.py's `brentq`). Where the interpolation divides by zero (a flat start of the curve)
/// the value is NaN, which brentq treats as positive, and so does this bisection.
pub fn eer(fpr: &[f64], tpr: &[f64]) -> f64 {
    if fpr.len() < 2 {
        return f64::NAN;
    }
    let f = |x: f64| 1.0 - x - interp_linear(fpr, tpr, x);
    let positive = |v: f64| v.is_nan() || v > 0.0;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    if !positive(f(lo)) || positive(f(hi)) {
        // No sign change (a degenerate curve): brentq would raise; report NaN.
        return if f(hi) == 0.0 { hi } else { f64::NAN };
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if positive(f(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Everything validate_on_lfw.py reports, plus the fold-averaged ROC for plotting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
    pub val: f64,
    pub val_std: f64,
    pub far: f64,
    pub auc: f64,
    pub eer: f64,
    /// Per-fold test accuracies and best thresholds.
    pub accuracy: Vec<f64>,
    pub best_thresholds: Vec<f64>,
    #[serde(skip)]
    pub tpr: Vec<f64>,
    #[serde(skip)]
    pub fpr: Vec<f64>,
}

/// facenet's `lfw.evaluate` + validate_on_lfw.py's AUC/EER on pairs `(e1[i], e2[i])`: `k`-fold accuracy
/// at the best threshold, VAL at FAR 1e-3, AUC and EER.
///
/// ```
/// use facegpu::{evaluate, DistanceMetric};
/// // 20 pairs: the same person's embeddings lie close together, different people's far apart.
/// let unit = |a: f32| vec![a.cos(), a.sin()];
/// let (mut e1, mut e2, mut same) = (vec![], vec![], vec![]);
/// for i in 0..20 {
///     let a = i as f32 * 0.3;
///     e1.push(unit(a));
///     e2.push(if i % 2 == 0 { unit(a + 0.05) } else { unit(a + 2.0) });
///     same.push(i % 2 == 0);
/// }
/// let v = evaluate(&e1, &e2, &same, 10, DistanceMetric::Euclidean, false);
/// assert_eq!(v.accuracy_mean, 1.0);
/// assert!(v.auc > 0.99);
/// ```
pub fn evaluate(e1: &[Vec<f32>], e2: &[Vec<f32>], same: &[bool], k: usize, metric: DistanceMetric, subtract_mean: bool) -> Verification {
    let roc = calculate_roc(&thresholds(0.01), e1, e2, same, k, metric, subtract_mean);
    let (val, val_std, far) = calculate_val(&thresholds(0.001), e1, e2, same, 1e-3, k, metric, subtract_mean);
    let (accuracy_mean, accuracy_std) = mean_std(&roc.accuracy);
    Verification {
        accuracy_mean,
        accuracy_std,
        val,
        val_std,
        far,
        auc: auc(&roc.fpr, &roc.tpr),
        eer: eer(&roc.fpr, &roc.tpr),
        accuracy: roc.accuracy,
        best_thresholds: roc.best_thresholds,
        tpr: roc.tpr,
        fpr: roc.fpr,
    }
}
