//! The machine's fp32 multiply-add peak, the ceiling every GFLOP/s figure in BENCHMARKS.md is
//! read against: independent chains of FMAs per thread (16 of 512 bits, or 12 of 256 bits where
//! AVX-512 is missing: 16 would not fit AVX2's 16 registers beside the two constants, and the
//! spills halved the figure on a Zen 3), on 1 and then 2 threads at once.
//!
//!     cargo bench --bench fma_peak

use std::time::Instant;

const ITERS: u64 = 100_000_000;
const CHAINS: usize = 16;
const CHAINS256: usize = 12;

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        let (lanes, chains, run): (u64, usize, fn() -> f32) = if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above.
            (16, CHAINS, || unsafe { chains512() })
        } else if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: FMA (with AVX) was detected just above.
            (8, CHAINS256, || unsafe { chains256() })
        } else {
            println!("no FMA instructions on this CPU");
            return;
        };
        for threads in [1u64, 2] {
            let start = Instant::now();
            let sink: f32 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|_| s.spawn(run)).collect();
                handles.into_iter().map(|h| h.join().expect("no panic")).sum()
            });
            let flops = (threads * ITERS * chains as u64 * lanes * 2) as f64;
            println!(
                "RESULT fma_peak threads={threads} vector_bits={} gflops={:.1} (checksum {sink:e})",
                lanes * 32,
                flops / start.elapsed().as_secs_f64() / 1e9
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chains512() -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    // Distinct starting values: equal chains would be merged by the compiler.
    let mut acc: [__m512; CHAINS] = std::array::from_fn(|k| _mm512_set1_ps(1.0 + k as f32));
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, m, a);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
fn chains256() -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc: [__m256; CHAINS256] = std::array::from_fn(|k| _mm256_set1_ps(1.0 + k as f32));
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, a);
        }
    }
    let mut out = [0.0f32; 8];
    acc.iter()
        .map(|&v| {
            // SAFETY: `out` holds 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            out.iter().sum::<f32>()
        })
        .sum()
}
