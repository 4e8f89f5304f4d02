//! `C[m, n] = A[m, k] * B[k, n]` on the CPU: B packed once into panels of [`NR`] columns, A packed per
//! block of [`MR`] rows by a caller-supplied gather (a plain matrix, or a convolution's input windows:
//! implicit GEMM), register-blocked micro-kernels for AVX-512, AVX2+FMA, NEON and a portable fallback chosen
//! at run time, and the rows split over threads. The epilogue (bias, scaled residual, ReLU) is applied
//! as each tile of C is stored.

/// Rows of A per micro-kernel tile.
pub const MR: usize = 8;
/// Columns of B per packed panel (two AVX-512 registers, four AVX2 registers).
pub const NR: usize = 32;
/// Depth of one packed block of A and B (the micro-kernel's loop): its A panel (MR x KC) and B panel
/// (KC x NR) stay in L1.
pub const KC: usize = 256;

/// B packed for [`gemm`]: for each block of [`KC`] rows of k, for each panel of [`NR`] columns, KC x NR
/// values row by row (columns past n are zero).
#[derive(Debug, Clone)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs a row-major `[k, n]` matrix.
    pub fn new(b: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "B is [k, n]");
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; k.div_ceil(KC) * KC * panels * NR];
        for kb in 0..k.div_ceil(KC) {
            let depth = KC.min(k - kb * KC);
            for p in 0..panels {
                let base = (kb * panels + p) * KC * NR;
                for kk in 0..depth {
                    let row = &b[(kb * KC + kk) * n..(kb * KC + kk + 1) * n];
                    let cols = NR.min(n - p * NR);
                    data[base + kk * NR..base + kk * NR + cols].copy_from_slice(&row[p * NR..p * NR + cols]);
                }
            }
        }
        Self { k, n, data }
    }

    fn panel(&self, kb: usize, p: usize) -> &[f32] {
        let panels = self.n.div_ceil(NR);
        let base = (kb * panels + p) * KC * NR;
        &self.data[base..base + KC * NR]
    }
}

/// What is applied to each output as it is stored: `y = act(residual * 1 + res_scale * (acc + bias))`
/// (without a residual, `y = act(acc + bias)`).
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Per output column.
    pub bias: Option<&'a [f32]>,
    /// The residual input (same layout as C: row stride `ldc`, from column `c_off`) and its scale on the
    /// conv's output.
    pub residual: Option<(&'a [f32], f32)>,
    pub relu: bool,
    /// PReLU's per-column alpha: `max(y, 0) + alpha * min(y, 0)` (MTCNN), after the rest.
    pub prelu: Option<&'a [f32]>,
}

/// Where C is written: a row-major matrix with row stride `ldc`, columns `[off, off + n)` (a slice of a
/// concatenation written in place).
pub struct Output<'a> {
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub off: usize,
}

/// Fills `dst` (MR x KC, row by row, zero-padded) with rows `[r0, r0 + MR)` (those below m) and depth
/// `[k0, k0 + depth)` of A.
pub trait PackA: Sync {
    fn pack(&self, r0: usize, k0: usize, depth: usize, dst: &mut [f32]);

    /// A already laid out as the micro-kernel reads it: rows `[r0, r0 + MR)` from the returned slice
    /// with the returned row stride, or `None` to pack.
    fn direct(&self, _r0: usize) -> Option<(&[f32], usize)> {
        None
    }

    /// Rows `[r0, r0 + MR)` of A read in place as [`Strided`] pieces (a convolution's windows where
    /// they lie in the image), or `None` to pack. Asked only where k fits one block ([`KC`]).
    fn strided(&self, _r0: usize) -> Option<Strided<'_>> {
        None
    }
}

/// A tile of A in place, in `segs` pieces of `seg` consecutive columns of k: piece `j` of row `r`
/// starts at `base[j * seg_stride + r * lda]`. A stride-`s` conv's windows of MR adjacent output
/// pixels: a piece per kernel row (`kw * c` values of one input row), rows `s * c` apart.
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a> {
    pub base: &'a [f32],
    pub lda: usize,
    pub seg: usize,
    pub seg_stride: usize,
    pub segs: usize,
}

/// A plain row-major `[m, k]` matrix.
pub struct Rows<'a> {
    pub a: &'a [f32],
    pub m: usize,
    pub k: usize,
}

impl PackA for Rows<'_> {
    fn direct(&self, r0: usize) -> Option<(&[f32], usize)> {
        (r0 + MR <= self.m).then(|| (&self.a[r0 * self.k..], self.k))
    }

    fn pack(&self, r0: usize, k0: usize, depth: usize, dst: &mut [f32]) {
        for r in 0..MR {
            let row = &mut dst[r * KC..r * KC + depth];
            if r0 + r < self.m {
                row.copy_from_slice(&self.a[(r0 + r) * self.k + k0..(r0 + r) * self.k + k0 + depth]);
            } else {
                row.fill(0.0);
            }
        }
    }
}

/// The micro-kernel available on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    /// aarch64's Advanced SIMD (4 lanes, 32 registers).
    Neon,
    Portable,
}

impl Isa {
    /// Every micro-kernel this CPU can run, fastest first.
    pub fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(Isa::Neon);
        }
        v.push(Isa::Portable);
        v
    }

    /// The fastest available, or `FACEGPU_SIMD=avx2|portable` (x86) or `portable` (aarch64) where
    /// available.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var("FACEGPU_SIMD").is_ok_and(|v| v == "portable") {
                return Isa::Portable;
            }
            if std::env::var("FACEGPU_SIMD").is_ok_and(|v| v == "avx2")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") && !std::env::var("FACEGPU_SIMD").is_ok_and(|v| v == "portable") {
            return Isa::Neon;
        }
        Isa::Portable
    }
}

/// `acc[MR][NR] = A (MR rows of `lda`, depth columns) * B_panel (depth x NR)`, plus `acc` unless `first`;
/// only the first `cols` columns are needed (AVX-512 computes 16 where that is enough).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_variables))]
fn kernel(isa: Isa, a: &[f32], lda: usize, b: &[f32], depth: usize, acc: &mut [[f32; NR]; MR], first: bool, cols: usize) {
    assert!(a.len() >= (MR - 1) * lda + depth && b.len() >= depth * NR, "the kernel's operands hold its tile");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: gemm checks that the CPU has the ISA (Isa::available); the operands' extents are
        // checked above.
        Isa::Avx512 => unsafe { x86::kernel_avx512(a, lda, b, depth, acc, first, cols) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::kernel_avx2(a, lda, b, depth, acc, first, cols) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        Isa::Neon => unsafe { arm::kernel_neon(a, lda, b, depth, acc, first, cols) },
        _ => {
            if first {
                acc.iter_mut().for_each(|r| r.fill(0.0));
            }
            kernel_portable(a, lda, b, depth, acc)
        }
    }
}

/// Plain multiply and add, which the compiler vectorizes with the target's baseline SIMD (`mul_add`
/// would be a libm call per value without a hardware FMA in the baseline).
fn kernel_portable(a: &[f32], lda: usize, b: &[f32], depth: usize, acc: &mut [[f32; NR]; MR]) {
    for kk in 0..depth {
        let brow: &[f32; NR] = b[kk * NR..kk * NR + NR].try_into().expect("a row of NR");
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[r * lda + kk];
            for (v, bv) in row.iter_mut().zip(brow) {
                *v += av * bv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// The tile's products over `depth`: MR rows x W registers of 16 columns (W = 1 for panels of at
    /// most 16 columns: half the FMAs).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn products<const W: usize>(a: &[f32], lda: usize, b: &[f32], depth: usize) -> [[__m512; W]; MR] {
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut c = [[_mm512_setzero_ps(); W]; MR];
        for kk in 0..depth {
            let mut bv = [_mm512_setzero_ps(); W];
            for (w, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(bp.add(kk * NR + w * 16));
            }
            for (r, cr) in c.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r * lda + kk));
                for (cv, bv) in cr.iter_mut().zip(&bv) {
                    *cv = _mm512_fmadd_ps(av, *bv, *cv);
                }
            }
        }
        c
    }

    /// [`products`] over the pieces of a [`Strided`](super::Strided) A, `b` holding their k rows in
    /// order.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn products_strided<const W: usize>(a: &super::Strided, b: &[f32]) -> [[__m512; W]; MR] {
        let (ap, bp) = (a.base.as_ptr(), b.as_ptr());
        let mut c = [[_mm512_setzero_ps(); W]; MR];
        for j in 0..a.segs {
            let (aj, bj) = (ap.add(j * a.seg_stride), bp.add(j * a.seg * NR));
            for kk in 0..a.seg {
                let mut bv = [_mm512_setzero_ps(); W];
                for (w, v) in bv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(bj.add(kk * NR + w * 16));
                }
                for (r, cr) in c.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*aj.add(r * a.lda + kk));
                    for (cv, bv) in cr.iter_mut().zip(&bv) {
                        *cv = _mm512_fmadd_ps(av, *bv, *cv);
                    }
                }
            }
        }
        c
    }

    /// [`kernel_avx512_store`] of a whole-k tile whose A is read in place.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_avx512_store_strided(a: &super::Strided, b: &[f32], out: *mut f32, ldc: usize, f: &Fused) {
        let unused = [[0f32; NR]; MR];
        if f.cols <= 16 {
            store_tile(&products_strided::<1>(a, b), &unused, true, out, ldc, f)
        } else {
            store_tile(&products_strided::<2>(a, b), &unused, true, out, ldc, f)
        }
    }

    /// The tile's products into `acc` (its first `cols` columns), added to it unless `first`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_avx512(a: &[f32], lda: usize, b: &[f32], depth: usize, acc: &mut [[f32; NR]; MR], first: bool, cols: usize) {
        if cols <= 16 {
            accumulate(&products::<1>(a, lda, b, depth), acc, first)
        } else {
            accumulate(&products::<2>(a, lda, b, depth), acc, first)
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn accumulate<const W: usize>(c: &[[__m512; W]; MR], acc: &mut [[f32; NR]; MR], first: bool) {
        for (cr, row) in c.iter().zip(acc.iter_mut()) {
            for (w, v) in cr.iter().enumerate() {
                let out = row.as_mut_ptr().add(w * 16);
                let v = if first { *v } else { _mm512_add_ps(_mm512_loadu_ps(out), *v) };
                _mm512_storeu_ps(out, v);
            }
        }
    }

    /// What [`kernel_avx512_store`] applies: bias, residual rows and their scale, ReLU, PReLU alphas.
    /// Slices start at the tile's first column and hold at least its `cols` columns.
    pub struct Fused<'a> {
        pub cols: usize,
        pub bias: &'a [f32],
        pub res: Option<(&'a [f32], f32)>,
        pub relu: bool,
        pub prelu: Option<&'a [f32]>,
    }

    /// [`kernel_avx512`] then, for its tile, `y = prelu?(relu?(res + s * (acc + bias)))` stored at `out`
    /// (rows `ldc` apart; the residual's rows too), columns past `cols` masked off.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn kernel_avx512_store(
        a: &[f32],
        lda: usize,
        b: &[f32],
        depth: usize,
        acc: &[[f32; NR]; MR],
        first: bool,
        out: *mut f32,
        ldc: usize,
        f: &Fused,
    ) {
        if f.cols <= 16 {
            store_tile(&products::<1>(a, lda, b, depth), acc, first, out, ldc, f)
        } else {
            store_tile(&products::<2>(a, lda, b, depth), acc, first, out, ldc, f)
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_tile<const W: usize>(c: &[[__m512; W]; MR], acc: &[[f32; NR]; MR], first: bool, out: *mut f32, ldc: usize, f: &Fused) {
        let zero = _mm512_setzero_ps();
        let mask = |w: usize| -> __mmask16 { (((1u32 << f.cols.saturating_sub(w * 16).min(16)) - 1) & 0xffff) as __mmask16 };
        let masks: [__mmask16; W] = std::array::from_fn(mask);
        let load = |p: *const f32, w: usize| _mm512_maskz_loadu_ps(masks[w], p.add(w * 16));
        let bias: [__m512; W] = std::array::from_fn(|w| load(f.bias.as_ptr(), w));
        let alpha: Option<[__m512; W]> = f.prelu.map(|al| std::array::from_fn(|w| load(al.as_ptr(), w)));
        for (r, cr) in c.iter().enumerate() {
            for w in 0..W {
                let mut v = _mm512_add_ps(cr[w], bias[w]);
                if !first {
                    v = _mm512_add_ps(v, _mm512_loadu_ps(acc[r].as_ptr().add(w * 16)));
                }
                if let Some((rp, s)) = f.res {
                    v = _mm512_fmadd_ps(_mm512_set1_ps(s), v, load(rp.as_ptr().add(r * ldc), w));
                }
                if f.relu {
                    v = _mm512_max_ps(v, zero);
                }
                if let Some(al) = &alpha {
                    v = _mm512_add_ps(_mm512_max_ps(v, zero), _mm512_mul_ps(al[w], _mm512_min_ps(v, zero)));
                }
                _mm512_mask_storeu_ps(out.add(r * ldc + w * 16), masks[w], v);
            }
        }
    }

    /// 8 rows x 32 columns do not fit 16 ymm registers: passes of 4 rows x 16 columns (8 accumulators,
    /// 2 B registers and the broadcast A: no spills), only the column halves `cols` needs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_avx2(a: &[f32], lda: usize, b: &[f32], depth: usize, acc: &mut [[f32; NR]; MR], first: bool, cols: usize) {
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for half in 0..cols.div_ceil(16).min(2) {
            for rows in (0..MR).step_by(4) {
                let mut c = [[_mm256_setzero_ps(); 2]; 4];
                for kk in 0..depth {
                    let b0 = _mm256_loadu_ps(bp.add(kk * NR + half * 16));
                    let b1 = _mm256_loadu_ps(bp.add(kk * NR + half * 16 + 8));
                    for (r, cr) in c.iter_mut().enumerate() {
                        let av = _mm256_set1_ps(*ap.add((rows + r) * lda + kk));
                        cr[0] = _mm256_fmadd_ps(av, b0, cr[0]);
                        cr[1] = _mm256_fmadd_ps(av, b1, cr[1]);
                    }
                }
                for (r, cr) in c.iter().enumerate() {
                    let out = acc[rows + r].as_mut_ptr().add(half * 16);
                    for (h, v) in cr.iter().enumerate() {
                        let v = if first { *v } else { _mm256_add_ps(_mm256_loadu_ps(out.add(h * 8)), *v) };
                        _mm256_storeu_ps(out.add(h * 8), v);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{MR, NR};
    use std::arch::aarch64::*;

    /// `acc` (its first `cols` columns) = the tile's products, plus `acc` unless `first`: 8 rows x 8
    /// columns at a time (16 accumulators of 4 lanes, half of the 32 registers), as many column blocks as
    /// `cols` needs.
    #[target_feature(enable = "neon")]
    pub unsafe fn kernel_neon(a: &[f32], lda: usize, b: &[f32], depth: usize, acc: &mut [[f32; NR]; MR], first: bool, cols: usize) {
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for q in 0..cols.div_ceil(8).min(NR / 8) {
            let mut c = [[vdupq_n_f32(0.0); 2]; MR];
            for kk in 0..depth {
                let b0 = vld1q_f32(bp.add(kk * NR + q * 8));
                let b1 = vld1q_f32(bp.add(kk * NR + q * 8 + 4));
                for (r, cr) in c.iter_mut().enumerate() {
                    let av = vdupq_n_f32(*ap.add(r * lda + kk));
                    cr[0] = vfmaq_f32(cr[0], av, b0);
                    cr[1] = vfmaq_f32(cr[1], av, b1);
                }
            }
            for (cr, row) in c.iter().zip(acc.iter_mut()) {
                let out = row.as_mut_ptr().add(q * 8);
                for (h, v) in cr.iter().enumerate() {
                    let v = if first { *v } else { vaddq_f32(vld1q_f32(out.add(h * 4)), *v) };
                    vst1q_f32(out.add(h * 4), v);
                }
            }
        }
    }
}

/// Stores one MR x NR tile (rows from r0, columns from c0 of the n) through the epilogue. Each part of
/// the epilogue is a separate branch-free pass over a row, which the compiler vectorizes.
#[allow(clippy::too_many_arguments)]
fn store(acc: &[[f32; NR]; MR], r0: usize, c0: usize, m: usize, n: usize, epi: &Epilogue, out: &mut Output, row_base: usize) {
    let cols = NR.min(n - c0);
    let zero = [0f32; NR];
    let bias = epi.bias.map_or(&zero[..cols], |b| &b[c0..c0 + cols]);
    for (r, row) in acc.iter().enumerate().take(MR.min(m - r0)) {
        let at = (r0 + r - row_base) * out.ldc + out.off + c0;
        let dst = &mut out.c[at..at + cols];
        for ((d, v), b) in dst.iter_mut().zip(&row[..cols]).zip(bias) {
            *d = v + b;
        }
        if let Some((res, s)) = epi.residual {
            let src = &res[(r0 + r) * out.ldc + out.off + c0..][..cols];
            for (d, x) in dst.iter_mut().zip(src) {
                *d = x + s * *d;
            }
        }
        if epi.relu {
            dst.iter_mut().for_each(|d| *d = d.max(0.0));
        }
        if let Some(alpha) = epi.prelu {
            for (d, a) in dst.iter_mut().zip(&alpha[c0..c0 + cols]) {
                *d = d.max(0.0) + a * d.min(0.0);
            }
        }
    }
}

/// Where the micro-kernel reads a tile of A: packed or in place with a row stride, or in strided pieces.
enum TileA<'a> {
    Rows(&'a [f32], usize),
    Strided(Strided<'a>),
}

/// The last block of k of a tile of MR whole rows and `cols` columns on AVX-512, with the epilogue
/// applied in registers and the tile stored to C: rows from `r0` (C's first row is `row_base`), columns
/// from `c0`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn store_fused(
    a: TileA,
    b: &[f32],
    depth: usize,
    acc: &[[f32; NR]; MR],
    first: bool,
    (r0, c0, cols): (usize, usize, usize),
    epi: &Epilogue,
    out: &mut Output,
    row_base: usize,
) {
    match a {
        TileA::Rows(a, lda) => assert!(a.len() >= (MR - 1) * lda + depth, "the kernel's A holds its tile"),
        TileA::Strided(st) => assert!(
            first && st.segs * st.seg == depth && st.base.len() >= (st.segs - 1) * st.seg_stride + (MR - 1) * st.lda + st.seg,
            "the strided A holds its tile and all of k"
        ),
    }
    assert!(b.len() >= depth * NR, "the kernel's B holds its tile");
    let at = (r0 - row_base) * out.ldc + out.off + c0;
    assert!(cols <= NR && at + (MR - 1) * out.ldc + cols <= out.c.len(), "the tile lies inside C");
    let zero = [0f32; NR];
    let bias = epi.bias.map_or(&zero[..], |b| &b[c0..c0 + cols]);
    let res = epi.residual.map(|(r, s)| {
        let from = r0 * out.ldc + out.off + c0;
        assert!(from + (MR - 1) * out.ldc + cols <= r.len(), "the tile lies inside the residual");
        (&r[from..], s)
    });
    let prelu = epi.prelu.map(|al| &al[c0..c0 + cols]);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only called with Isa::Avx512 (available, checked by gemm); every pointer's extent is
    // asserted above, and the kernel touches only the first `cols` columns of each row.
    unsafe {
        let f = x86::Fused { cols, bias, res, relu: epi.relu, prelu };
        let c = out.c[at..].as_mut_ptr();
        match a {
            TileA::Rows(a, lda) => x86::kernel_avx512_store(a, lda, b, depth, acc, first, c, out.ldc, &f),
            TileA::Strided(st) => x86::kernel_avx512_store_strided(&st, b, c, out.ldc, &f),
        }
    }
}

/// The micro-kernel's throughput on operands held in L1, in GFLOP/s summed over `threads` threads each
/// running it for about `millis` ms: the practical peak of this CPU for [`gemm`] (the VM may not expose
/// the clock, so this measures it instead of multiplying one).
pub fn peak_gflops(isa: Isa, threads: usize, millis: u64) -> f64 {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available on this CPU");
    let (a, b) = (vec![0.5f32; MR * KC], vec![0.25f32; KC * NR]);
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut acc = [[0f32; NR]; MR];
                    let (start, mut calls) = (std::time::Instant::now(), 0u64);
                    while start.elapsed().as_millis() < millis as u128 {
                        for _ in 0..64 {
                            kernel(isa, &a, KC, &b, KC, &mut acc, calls == 0, NR);
                            calls += 1;
                        }
                    }
                    std::hint::black_box(&acc);
                    2.0 * (MR * NR * KC) as f64 * calls as f64 / start.elapsed().as_secs_f64() / 1e9
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a peak thread does not panic")).collect()
    });
    per_thread.iter().sum()
}

/// `C = epilogue(A * B)` for `m` rows, on `threads` threads (rows split evenly in multiples of MR).
/// `out.c` holds the m rows of C (stride `ldc`). `isa` must be one the CPU has ([`Isa::available`]).
pub fn gemm(isa: Isa, a: &dyn PackA, m: usize, b: &PackedB, epi: &Epilogue, out: &mut Output, threads: usize) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available on this CPU");
    let tiles = m.div_ceil(MR);
    let threads = threads.clamp(1, tiles.max(1));
    let per = tiles.div_ceil(threads) * MR;
    let ldc = out.ldc;
    let off = out.off;
    // Rayon's pool, so a layer does not pay for starting threads (at batch 1 a network has 133 small
    // GEMMs).
    rayon::scope(|s| {
        let mut rest: &mut [f32] = out.c;
        let mut row = 0;
        while row < m {
            let rows = per.min(m - row);
            let take = if row + rows < m { rows * ldc } else { rest.len() };
            let (mine, tail) = rest.split_at_mut(take);
            rest = tail;
            let r0 = row;
            s.spawn(move |_| {
                let mut part = Output { c: mine, ldc, off };
                gemm_rows(isa, a, r0, r0 + rows, m, b, epi, &mut part);
            });
            row += rows;
        }
    });
}

/// Rows `[from, to)` of C into `out` (whose first row is row `from`).
#[allow(clippy::too_many_arguments)]
fn gemm_rows(isa: Isa, a: &dyn PackA, from: usize, to: usize, m: usize, b: &PackedB, epi: &Epilogue, out: &mut Output) {
    let (k, n) = (b.k, b.n);
    let panels = n.div_ceil(NR);
    let kblocks = k.div_ceil(KC);
    let mut apack = vec![0f32; kblocks * MR * KC];
    let mut acc = [[0f32; NR]; MR];
    for r0 in (from..to).step_by(MR) {
        // A whole tile on AVX-512 takes its epilogue in registers on the last block of k, and where k
        // is one block, may read a conv's windows in place.
        let fused = isa == Isa::Avx512 && r0 + MR <= to.min(m);
        let strided = if fused && kblocks == 1 { a.strided(r0) } else { None };
        let direct = a.direct(r0);
        if direct.is_none() && strided.is_none() {
            for kb in 0..kblocks {
                let depth = KC.min(k - kb * KC);
                a.pack(r0, kb * KC, depth, &mut apack[kb * MR * KC..(kb + 1) * MR * KC]);
            }
        }
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            if let Some(st) = strided {
                store_fused(TileA::Strided(st), b.panel(0, p), k, &acc, true, (r0, p * NR, cols), epi, out, from);
                continue;
            }
            for kb in 0..kblocks {
                let depth = KC.min(k - kb * KC);
                let (ablock, lda) = match direct {
                    Some((rows, lda)) => (&rows[kb * KC..], lda),
                    None => (&apack[kb * MR * KC..(kb + 1) * MR * KC], KC),
                };
                if fused && kb + 1 == kblocks {
                    store_fused(TileA::Rows(ablock, lda), b.panel(kb, p), depth, &acc, kb == 0, (r0, p * NR, cols), epi, out, from);
                } else {
                    kernel(isa, ablock, lda, b.panel(kb, p), depth, &mut acc, kb == 0, cols);
                }
            }
            if !fused {
                store(&acc, r0, p * NR, m.min(to), n, epi, out, from);
            }
        }
    }
}
