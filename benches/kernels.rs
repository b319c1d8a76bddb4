//! Kernel benchmarks at the slides' real shapes, with GFLOP/s (criterion's throughput is set to
//! the FLOP count, so its "elem/s" column reads as FLOP/s).
//!
//!     cargo bench --bench kernels                  # both cores
//!     RAYON_NUM_THREADS=1 cargo bench --bench kernels

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use std::hint::black_box;
use std::time::Duration;
use tensorgraph_kernels::conv::{self, Conv2dGeometry};
use tensorgraph_kernels::gemm;
use tensorgraph_kernels::pool::{self, PoolGeometry};
use tensorgraph_kernels::Epilogue;

/// Kernels write into the previous iteration's output buffer, as in a session, so the figures
/// are the kernels' own and not the allocator's.
fn reuse(slot: &mut Option<Vec<f32>>) -> impl FnOnce(usize) -> Vec<f32> + '_ {
    move |len| {
        let mut v = slot.take().unwrap_or_default();
        v.resize(len, 0.0);
        v
    }
}

const NONE: Epilogue<'static, f32> = Epilogue::NONE;

fn data(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
}

fn gemm_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    // M x K x N: MLP fc1 forward, fc1 weight gradient; CNN conv2 im2col forward, weight
    // gradient, column gradient (whole batch of 100); the LSTM tutorial's step forward, weight
    // gradient `xhᵀ·dicfo` (A transposed, `t`) and `dicfo·Wᵀ` for h_prev (B transposed, `T`);
    // the CNN's fc1 forward, weight gradient `xᵀ·dy` and input gradient `dy·Wᵀ`.
    let shapes = [
        (50, 784, 300, false, false),
        (784, 50, 300, false, false),
        (784, 50, 300, true, false),
        (19600, 288, 64, false, false),
        (288, 19600, 64, false, false),
        (19600, 64, 288, false, false),
        (100, 156, 512, false, false),
        (156, 100, 512, true, false),
        (100, 512, 128, false, true),
        (100, 3136, 64, false, false),
        (3136, 100, 64, true, false),
        (100, 64, 3136, false, true),
    ];
    for (m, k, n, ta, tb) in shapes {
        let a =
            if ta { Array2::from_shape_vec((k, m), data(m * k)) } else { Array2::from_shape_vec((m, k), data(m * k)) };
        let b =
            if tb { Array2::from_shape_vec((n, k), data(k * n)) } else { Array2::from_shape_vec((k, n), data(k * n)) };
        let (a, b) = (a.unwrap(), b.unwrap());
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let mut out = Some(vec![0.0; m * n]);
        let name = format!("{}{}{m}x{k}x{n}", if ta { "t" } else { "" }, if tb { "T" } else { "" });
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| {
                let c = gemm::matmul_with(black_box(a.view()), black_box(b.view()), ta, tb, reuse(&mut out), NONE);
                out = Some(c.unwrap().into_raw_vec_and_offset().0);
            })
        });
    }
    group.finish();
    // A left operand with zeros (skipped, see `gemm_sparse`): the MLP's fc1 on MNIST pixels
    // (19% nonzero) and its weight gradient; the CNN's fc1 on pooled ReLUs and its gradient.
    let mut group = c.benchmark_group("gemm_sparse_left");
    for (m, k, n, ta) in [(50, 784, 300, false), (784, 50, 300, true), (100, 3136, 64, false), (3136, 100, 64, true)] {
        for density in [0.1, 0.2, 0.3, 0.4] {
            let keep = |i: usize| ((i * 2_654_435_761) % 1000) as f64 / 1000.0 < density;
            let a: Vec<f32> = data(m * k).into_iter().enumerate().map(|(i, v)| if keep(i) { v } else { 0.0 }).collect();
            let a = if ta { Array2::from_shape_vec((k, m), a) } else { Array2::from_shape_vec((m, k), a) }.unwrap();
            let b = Array2::from_shape_vec((k, n), data(k * n)).unwrap();
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            let mut out = Some(vec![0.0; m * n]);
            let name = format!("{}{m}x{k}x{n}_d{density}", if ta { "t" } else { "" });
            group.bench_function(BenchmarkId::from_parameter(name), |bench| {
                bench.iter(|| {
                    let c =
                        gemm::matmul_with(black_box(a.view()), black_box(b.view()), ta, false, reuse(&mut out), NONE);
                    out = Some(c.unwrap().into_raw_vec_and_offset().0);
                })
            });
        }
    }
    group.finish();
}

fn convolutions(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    let layers = [
        ("conv1", Conv2dGeometry::new([100, 28, 28, 1], [3, 3, 1, 32], [1, 1], [1, 1], true)),
        ("conv2", Conv2dGeometry::new([100, 28, 28, 32], [3, 3, 32, 64], [2, 2], [1, 1], true)),
    ];
    for (name, g) in layers {
        let x = data(g.batch * g.in_h * g.in_w * g.in_c);
        let w = data(g.taps() * g.out_c);
        let dy = data(g.batch * g.positions() * g.out_c);
        group.throughput(Throughput::Elements((2 * g.batch * g.positions() * g.taps() * g.out_c) as u64));
        let mut out = Some(vec![]);
        group.bench_function(format!("{name}_fwd"), |b| {
            b.iter(|| out = Some(conv::conv2d_with(black_box(&x), black_box(&w), &g, reuse(&mut out), NONE)))
        });
        group.bench_function(format!("{name}_backprop_filter"), |b| {
            b.iter(|| conv::conv2d_backprop_filter(black_box(&x), black_box(&dy), &g))
        });
        group.bench_function(format!("{name}_backprop_input"), |b| {
            b.iter(|| {
                out = Some(conv::conv2d_backprop_input_with(
                    black_box(&w),
                    black_box(&dy[..]).into(),
                    &g,
                    reuse(&mut out),
                    Default::default(),
                ))
            })
        });
    }
    // conv2's gradients from a max-pooling's routed gradient (a quarter of dy nonzero at most,
    // fewer under the ReLU mask), as the CNN's conv2 gets them: the sparse products.
    let g = layers[1].1;
    let pool = PoolGeometry::new(g.output_shape(), [2, 2], [2, 2], false);
    let (_, winners) = pool::max_pool_winners(&data(g.batch * g.positions() * g.out_c), &pool);
    let pooled_dy =
        pool::max_pool_grad_from_winners(&winners, &data(winners.len()), &pool, |n| vec![0.0; n], true, None);
    let (x, w) = (data(g.batch * g.in_h * g.in_w * g.in_c), data(g.taps() * g.out_c));
    group.throughput(Throughput::Elements((2 * g.batch * g.positions() * g.taps() * g.out_c) as u64));
    group.bench_function("conv2_backprop_filter_pooled", |b| {
        b.iter(|| conv::conv2d_backprop_filter(black_box(&x), black_box(&pooled_dy), &g))
    });
    group.bench_function("conv2_backprop_input_pooled", |b| {
        b.iter(|| conv::conv2d_backprop_input(black_box(&w), black_box(&pooled_dy), &g))
    });
    // The CNN step's backward through conv2 in one pass, as the session runs it: dy routed from
    // the pooling's winners (ReLU-masked, bias sums), conv2's input gradient masked by conv1's
    // output (bias sums), conv1's filter gradient from it, conv2's filter gradient.
    let (lower, upper) = (layers[0].1, layers[1].1);
    let pool = PoolGeometry::new(upper.output_shape(), [2, 2], [2, 2], false);
    let (images, h, w) = (data(100 * 784), data(100 * 784 * 32), data(upper.taps() * 64));
    let (_, winners) = pool::max_pool_winners(&data(100 * upper.positions() * 64), &pool);
    let pooled_grad = data(winners.len());
    let (mut lower_dw, mut dw) = (vec![0.0; lower.taps() * 32], vec![0.0; upper.taps() * 64]);
    let (mut sums, mut pool_sums) = (vec![0.0; 100 * 32], vec![0.0; 100 * 64]);
    let flops = 2 * 100 * (2 * upper.positions() * upper.taps() * 64 + lower.positions() * lower.taps() * 32);
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("conv2_backward_fused", |b| {
        b.iter(|| {
            let upstream = conv::Upstream::Pooled(conv::PooledGrad {
                winners: &winners,
                grad: black_box(&pooled_grad),
                geometry: &pool,
                relu: true,
                image_sums: Some(&mut pool_sums),
            });
            let with = conv::InputGradWith {
                relu_features: Some(&h),
                image_sums: Some(&mut sums),
                lower: Some(conv::LowerFilterGrad {
                    x: &images,
                    geometry: &lower,
                    out: &mut lower_dw,
                    keep_input_grad: false,
                }),
                filter: Some(conv::FilterGrad { x: &h, out: &mut dw }),
            };
            conv::conv2d_backprop_input_with(black_box(&w), upstream, &upper, Vec::with_capacity, with)
        })
    });
    group.finish();
}

fn pooling(c: &mut Criterion) {
    let mut group = c.benchmark_group("maxpool");
    let g = PoolGeometry::new([100, 14, 14, 64], [2, 2], [2, 2], false);
    let x = data(100 * 14 * 14 * 64);
    let dy = data(100 * 7 * 7 * 64);
    let mut out = Some(vec![]);
    group.bench_function("fwd", |b| b.iter(|| out = Some(pool::max_pool_with(black_box(&x), &g, reuse(&mut out)))));
    group.bench_function("grad", |b| {
        b.iter(|| out = Some(pool::max_pool_grad_with(black_box(&x), black_box(&dy), &g, reuse(&mut out), false, None)))
    });
    // Cold: inputs and outputs cycling through 12 copies (60 MB each way, past the L3).
    let xs: Vec<Vec<f32>> = (0..12).map(|_| x.clone()).collect();
    let mut outs: Vec<Vec<f32>> = (0..12).map(|_| x.clone()).collect();
    let mut i = 0;
    group.bench_function("grad_cold", |b| {
        b.iter(|| {
            i = (i + 1) % 12;
            let o = std::mem::take(&mut outs[i]);
            outs[i] = pool::max_pool_grad_with(black_box(&xs[i]), black_box(&dy), &g, |_| o, true, None);
        })
    });
    group.finish();
}

/// The recurrent tutorial's LSTM step (batch 100, 28 inputs, 128 units) forward and backward,
/// and the nonlinearities its gate loops spend their time in.
fn lstm(c: &mut Criterion) {
    use tensorgraph_kernels::lstm::{block_cell, block_cell_grad, BlockAttrs};
    use tensorgraph_kernels::vmath;
    let mut group = c.benchmark_group("lstm");
    let (batch, input, cell) = (100, 28, 128);
    let m = |r: usize, c: usize| Array2::from_shape_vec((r, c), data(r * c)).unwrap();
    let (x, cs, h, w) = (m(batch, input), m(batch, cell), m(batch, cell), m(input + cell, 4 * cell));
    let b = ndarray::Array1::from_vec(data(4 * cell));
    let p = ndarray::Array1::<f32>::zeros(cell);
    let attrs = BlockAttrs { forget_bias: 1.0, cell_clip: -1.0, use_peephole: false };
    let step = || {
        block_cell(
            x.view(),
            cs.view(),
            h.view(),
            w.view(),
            [p.view(), p.view(), p.view()],
            b.view(),
            attrs,
            tensorgraph_kernels::zeros,
        )
    };
    group.throughput(Throughput::Elements((2 * batch * (input + cell) * 4 * cell) as u64));
    group.bench_function("block_cell", |bench| bench.iter(|| black_box(step().unwrap())));
    let out = step().unwrap();
    let (dc, dh) = (data(batch * cell), data(batch * cell));
    let ps = p.as_slice().unwrap();
    let gates = [&out.i[..], &out.cs, &out.f, &out.o, &out.ci, &out.co];
    group.throughput(Throughput::Elements((batch * cell) as u64));
    group.bench_function("block_cell_grad", |bench| {
        bench.iter(|| {
            let (cs, shape) = (cs.as_slice().unwrap(), (batch, cell));
            black_box(block_cell_grad(cs, [ps, ps, ps], gates, &dc, &dh, shape, false, tensorgraph_kernels::zeros))
        })
    });
    let mut v = data(batch * cell);
    group.bench_function("sigmoid", |bench| bench.iter(|| vmath::sigmoid_slice(black_box(&mut v))));
    group.bench_function("tanh", |bench| bench.iter(|| vmath::tanh_slice(black_box(&mut v))));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = gemm_shapes, convolutions, pooling, lstm }
criterion_main!(benches);
