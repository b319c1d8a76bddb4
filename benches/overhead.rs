//! Fixed costs, not kernels: one `Session::run` of a tiny graph, one `while_loop` iteration and
//! one `cond` (each is a call into a function graph's session).
//!
//!     cargo bench --bench overhead

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;
use tensorgraph::prelude::*;
use tensorgraph::{cond, while_loop};

fn session_run(c: &mut Criterion) {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, Shape::scalar()).named("x").unwrap();
    let y = (&x + 1.0).unwrap();
    let sess = Session::new(&g).unwrap();
    c.bench_function("session_run/scalar_add", |b| b.iter(|| sess.run(&y, feed! {x => black_box(1.0f32)}).unwrap()));
}

fn loops(c: &mut Criterion) {
    let g = Graph::new();
    let n = g.placeholder(DType::I32, Shape::scalar()).named("n").unwrap();
    let x = g.placeholder(DType::F32, [16]).named("x").unwrap();
    let i0 = g.scalar(0.0, DType::I32).unwrap();
    let out = while_loop(
        |v| math::less(&v[0], &n),
        |v| Ok(vec![(&v[0] + &v[0].graph().scalar(1.0, DType::I32)?)?, (&v[1] * 0.5)?]),
        &[&i0, &x],
        None,
    )
    .unwrap();
    let p = g.placeholder(DType::Bool, Shape::scalar()).named("p").unwrap();
    let picked = cond(&p, || Ok(vec![(&x * 2.0)?]), || Ok(vec![(&x + 2.0)?])).unwrap();
    let sess = Session::new(&g).unwrap();
    let xv = ndarray::Array1::<f32>::ones(16).into_dyn();
    let mut group = c.benchmark_group("while_loop");
    for iterations in [0, 1, 100] {
        group.bench_function(BenchmarkId::from_parameter(iterations), |b| {
            b.iter(|| sess.run(&out[1], feed! {x => &xv, n => black_box(iterations)}).unwrap())
        });
    }
    group.finish();
    c.bench_function("cond/taken_branch", |b| b.iter(|| sess.run(&picked[0], feed! {x => &xv, p => true}).unwrap()));
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = session_run, loops }
criterion_main!(benches);
