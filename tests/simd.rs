//! The CPU backend's kernels against plain loops at awkward shapes, with every micro-kernel this CPU
//! has (AVX-512, AVX2+FMA, portable), and its Inception-ResNet-v1 against TensorFlow's embeddings.

mod common;

use common::{assert_close, Rng};
use facegpu::checkpoint::{Standardization, Weights};
use facegpu::cpu;
use facegpu::data::images::load_rgb;
use facegpu::data::npy;
use facegpu::models::inception_resnet_v1_cpu::InceptionResnetV1Cpu;
use facegpu::ops::conv2d::{Activation, Epilogue as TwinEpilogue, Padding};
use facegpu::ops::image::Transform;
use facegpu::simd::gemm::{gemm, Epilogue, Isa, Output, PackedB, Rows};
use facegpu::simd::{conv2d_into_isa, max_pool_into, ConvWeights};

/// `relu?(residual + s * (a * b + bias))` in f64, into columns `[off, off + n)` of rows of `ldc`.
#[allow(clippy::too_many_arguments)]
fn gemm_f64(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    bias: &[f32],
    res: Option<(&[f32], f32)>,
    relu: bool,
    ldc: usize,
    off: usize,
    c: &mut [f32],
) {
    for i in 0..m {
        for j in 0..n {
            let mut v: f64 = (0..k).map(|q| a[i * k + q] as f64 * b[q * n + j] as f64).sum::<f64>() + bias[j] as f64;
            if let Some((r, s)) = res {
                v = r[i * ldc + off + j] as f64 + s as f64 * v;
            }
            if relu {
                v = v.max(0.0);
            }
            c[i * ldc + off + j] = v as f32;
        }
    }
}

#[test]
fn gemm_matches_f64_at_awkward_shapes_with_every_micro_kernel_and_thread_count() {
    let mut rng = Rng::new(41);
    // m around the 8-row tiles, k around the 256-deep blocks, n around the 32-column panels.
    for &(m, k, n) in &[(1, 1, 1), (7, 3, 5), (9, 255, 31), (33, 256, 32), (17, 257, 33), (100, 600, 70)] {
        let (a, b, bias) = (rng.vec(m * k, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let (ldc, off) = (n + 5, 3);
        let res = rng.vec(m * ldc, -1.0, 1.0);
        let mut want = vec![7f32; m * ldc];
        gemm_f64(&a, &b, (m, k, n), &bias, Some((&res, 0.17)), true, ldc, off, &mut want);
        let packed = PackedB::new(&b, k, n);
        for isa in Isa::available() {
            for threads in [1, 2, 3] {
                let mut got = vec![7f32; m * ldc];
                let epi = Epilogue { bias: Some(&bias), residual: Some((&res, 0.17)), relu: true, prelu: None };
                gemm(isa, &Rows { a: &a, m, k }, m, &packed, &epi, &mut Output { c: &mut got, ldc, off }, threads);
                // k fp32 products summed in another order than f64's: up to k * 2^-24 relative to the
                // terms' magnitudes (|a|, |b| <= 1), 600 terms at most: 1e-4 absolute.
                assert_close(&format!("gemm {isa:?} {threads} threads m={m} k={k} n={n}"), &got, &want, 1e-4, 1e-5);
            }
        }
    }
}

#[test]
fn gemm_with_prelu_matches_f64_on_narrow_and_partial_panels() {
    let mut rng = Rng::new(43);
    // MTCNN's widths: 10, 16 and 6 columns fill one 16-wide register, 28 and 48 two and a half-panel,
    // and rows that end mid-tile.
    for &(m, k, n) in &[(16, 27, 10), (24, 90, 16), (11, 32, 6), (40, 27, 28), (19, 252, 48)] {
        let (a, b, bias, alpha) = (rng.vec(m * k, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, 0.0, 0.5));
        let (ldc, off) = (n + 2, 1);
        let mut want = vec![5f32; m * ldc];
        gemm_f64(&a, &b, (m, k, n), &bias, None, false, ldc, off, &mut want);
        for i in 0..m {
            for j in 0..n {
                let v = &mut want[i * ldc + off + j];
                *v = v.max(0.0) + alpha[j] * v.min(0.0);
            }
        }
        let packed = PackedB::new(&b, k, n);
        for isa in Isa::available() {
            let mut got = vec![5f32; m * ldc];
            let epi = Epilogue { bias: Some(&bias), residual: None, relu: false, prelu: Some(&alpha) };
            gemm(isa, &Rows { a: &a, m, k }, m, &packed, &epi, &mut Output { c: &mut got, ldc, off }, 2);
            // As above: at most 252 fp32 products (|a|, |b| <= 1) summed in another order than f64's.
            assert_close(&format!("gemm+prelu {isa:?} m={m} k={k} n={n}"), &got, &want, 1e-4, 1e-5);
            assert!(got.chunks(ldc).all(|r| r[0] == 5.0 && r[off + n..].iter().all(|&v| v == 5.0)), "columns outside the slice untouched");
        }
    }
}

#[test]
fn area_resizes_equal_the_cpu_twin_bit_for_bit() {
    let mut rng = Rng::new(44);
    let t = Transform { round: true, add: -127.5, mul: 0.0078125 };
    // Pyramid levels (shrinking by non-integer factors, to one pixel; one large enough to be split over
    // threads), an enlarging resize, 5 channels (not the RGB fast path); the SIMD path reorders no sum,
    // so equality is exact. Halving averages 4 integers: many ties for the rounding (to even).
    for &(shape, out) in &[
        ([1, 8, 10, 3], (4, 5)),
        ([1, 300, 401, 3], (180, 241)),
        ([1, 37, 53, 3], (26, 37)),
        ([2, 40, 31, 3], (1, 1)),
        ([1, 9, 7, 3], (20, 16)),
        ([1, 12, 13, 5], (5, 7)),
    ] {
        let x: Vec<f32> = rng.vec(shape.iter().product(), 0.0, 255.0).iter().map(|v| v.floor()).collect();
        let want = cpu::image::resize_area(&x, &shape, out, t).unwrap();
        let got = facegpu::simd::image::resize_area(&x, shape, out, t).unwrap();
        assert_eq!(got, want, "resize_area {shape:?} -> {out:?}");
        // The same pixels as bytes (a decoded photo, read without converting it first).
        let bytes: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        assert_eq!(facegpu::simd::image::resize_area(&bytes, shape, out, t).unwrap(), want, "resize_area of u8 {shape:?}");
    }
    // RNet/ONet crops: inside the image, across each edge, wholly outside, larger than the output,
    // smaller (enlarging), from the second image.
    let shape = [2, 30, 40, 3];
    let x = rng.vec(shape.iter().product(), 0.0, 255.0);
    let boxes = [0, 3, 4, 20, 25, 1, -5, -6, 30, 18, 0, 30, 20, 15, 40, 1, 50, 50, 9, 9, 0, 10, 10, 7, 5, 1, 0, 0, 40, 30];
    let t = Transform { round: false, add: -127.5, mul: 0.0078125 };
    let x: Vec<f32> = x.iter().map(|v| v.floor()).collect();
    let bytes: Vec<u8> = x.iter().map(|&v| v as u8).collect();
    for size in [24, 48] {
        let want = cpu::image::crop_resize_area(&x, &shape, &boxes, (size, size), t).unwrap();
        assert_eq!(facegpu::simd::image::crop_resize_area(&bytes, shape, &boxes, (size, size), t).unwrap(), want, "u8 crops to {size}");
        let got = facegpu::simd::image::crop_resize_area(&x, shape, &boxes, (size, size), t).unwrap();
        assert_eq!(got, want, "crop_resize_area to {size}");
    }
    let bad = facegpu::simd::image::crop_resize_area(&x, shape, &[2, 0, 0, 5, 5], (24, 24), t).unwrap_err();
    assert!(bad.to_string().contains("names image 2 of 2"), "{bad}");
}

#[test]
fn max_pool_equals_the_cpu_twin_with_same_and_valid_padding() {
    let mut rng = Rng::new(45);
    // MTCNN's pools (2x2 and 3x3 stride 2, SAME with its one-sided padding, VALID) and the stem's 3x3,
    // at odd and even sizes.
    for &(shape, k, s, padding) in &[
        ([2, 9, 11, 10], 2, 2, Padding::Same),
        ([3, 22, 22, 28], 3, 2, Padding::Same),
        ([1, 10, 9, 48], 3, 2, Padding::Valid),
        ([1, 5, 5, 64], 2, 2, Padding::Same),
        ([1, 147, 147, 64], 3, 2, Padding::Valid),
    ] {
        let x = rng.vec(shape.iter().product(), -3.0, 3.0);
        let (want, _, p) = cpu::pool::max_pool(&x, &shape, (k, k), (s, s), padding).unwrap();
        let o = p.out_shape();
        // Into channels [1, 1 + c) of a wider output, as a concatenation's part.
        let y_c = shape[3] + 2;
        let mut y = vec![9f32; o[0] * o[1] * o[2] * y_c];
        let got_shape = max_pool_into(&x, shape, k, s, padding, &mut y, y_c, 1).unwrap();
        assert_eq!(got_shape.to_vec(), o.to_vec());
        let got: Vec<f32> = y.chunks(y_c).flat_map(|p| p[1..1 + shape[3]].to_vec()).collect();
        assert_eq!(got, want, "max_pool {shape:?} k={k} s={s} {padding:?}");
        assert!(y.chunks(y_c).all(|p| p[0] == 9.0 && p[y_c - 1] == 9.0), "channels outside the slice untouched");
    }
}

#[test]
fn conv2d_matches_the_cpu_twin_at_awkward_shapes_with_every_micro_kernel() {
    let mut rng = Rng::new(42);
    // (input, kernel, cout, stride, padding): an RGB stem, TF SAME with asymmetric padding at stride 2,
    // 1x7 and 7x1, a pointwise conv (the GEMM-on-rows path), odd channel counts, VALID.
    type Case = ([usize; 4], (usize, usize), usize, usize, Padding);
    let cases: &[Case] = &[
        ([2, 17, 19, 3], (3, 3), 32, 2, Padding::Valid),
        ([1, 10, 9, 5], (3, 3), 7, 2, Padding::Same),
        ([2, 8, 8, 12], (1, 7), 9, 1, Padding::Same),
        ([1, 8, 8, 12], (7, 1), 33, 1, Padding::Same),
        ([3, 5, 6, 70], (1, 1), 40, 1, Padding::Same),
        ([1, 9, 9, 4], (3, 3), 6, 1, Padding::Valid),
        // Rows of at least 8 output pixels whose windows the AVX-512 kernel reads in place (k <= 256):
        // MTCNN's narrow VALID convs, SAME with border tiles packed and inner ones not, stride 2, a 2x2.
        ([2, 12, 30, 10], (3, 3), 16, 1, Padding::Valid),
        ([1, 11, 37, 16], (3, 3), 32, 1, Padding::Valid),
        ([1, 16, 33, 8], (3, 3), 20, 1, Padding::Same),
        ([1, 21, 41, 3], (3, 3), 10, 2, Padding::Valid),
        ([3, 7, 12, 48], (2, 2), 64, 1, Padding::Valid),
    ];
    for &(xs, k, cout, stride, padding) in cases {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(k.0 * k.1 * xs[3] * cout, -0.5, 0.5);
        let bias = rng.vec(cout, -0.5, 0.5);
        let twin = TwinEpilogue { bias: Some(&bias[..]), act: Activation::Relu, ..Default::default() };
        let (want, _) = cpu::conv2d::conv2d(&x, &xs, &w, &[k.0, k.1, xs[3], cout], &twin, (stride, stride), padding).unwrap();
        let weights = ConvWeights::new(&w, k, xs[3], cout, stride, padding);
        let out = weights.out_shape(xs).unwrap();
        for isa in Isa::available() {
            // Written at channel 2 of a tensor 3 channels wider, as a concatenation's part.
            let y_c = cout + 3;
            let mut y = vec![-9f32; out[0] * out[1] * out[2] * y_c];
            let epi = Epilogue { bias: Some(&bias), residual: None, relu: true, prelu: None };
            conv2d_into_isa(isa, &x, xs, &weights, &epi, &mut y, y_c, 2).unwrap();
            let got: Vec<f32> = y.chunks(y_c).flat_map(|p| p[2..2 + cout].to_vec()).collect();
            // Up to 7 * 7 * 70 products summed in another order than the twin's: 1e-4 absolute.
            assert_close(&format!("conv2d {isa:?} {xs:?} k={k:?} s={stride}"), &got, &want, 1e-4, 1e-4);
            assert!(y.chunks(y_c).all(|p| p[..2] == [-9.0, -9.0] && p[2 + cout] == -9.0), "channels outside the slice untouched");
        }
    }
}

#[test]
fn cpu_backend_embeddings_match_tensorflow_within_1e5() {
    let Some(ckpt) = common::fixture("facenet-20170512-110547/checkpoint") else { return };
    let Some(golden) = common::fixture("irv1-golden/order.json") else { return };
    let (ckpt, golden) = (ckpt.with_file_name(""), golden.with_file_name(""));
    let model = InceptionResnetV1Cpu::load(&Weights::load(&ckpt).unwrap()).unwrap();
    let images: Vec<f32> = common::golden_faces(&golden).iter().flat_map(|p| load_rgb(p, 160).unwrap()).collect();
    for (std, file) in
        [(Standardization::Prewhiten, "embeddings_prewhiten.npy"), (Standardization::Fixed, "embeddings_fixed_standardization.npy")]
    {
        let got = model.embed(&images, [5, 160, 160, 3], std).unwrap();
        let (_, want) = npy::read_f32(&golden.join(file)).unwrap();
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{std:?}: CPU backend max abs embedding error vs TensorFlow {err:e}");
        // As the GPU path: fp32 sums in another order over 100+ layers; a wrong layer moves unit-norm
        // components by 1e-2 or more.
        assert_close(&format!("CPU embeddings {std:?}"), &got, &want, 1e-5, 0.0);
    }
}
