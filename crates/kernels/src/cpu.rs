//! What the machine offers, as the OS reports it: cache sizes for blocking decisions and the
//! worker threads kernels split work across.

/// Worker threads kernels split work across (rayon's pool), at least 1.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// The L1 data cache of one core in bytes, as Linux reports it (32 KiB where it does not say).
///
/// ```
/// assert!(tensorgraph_kernels::cpu::l1_bytes() >= 8 << 10);
/// ```
pub fn l1_bytes() -> usize {
    static L1: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L1.get_or_init(|| data_cache(1).unwrap_or(32 << 10))
}

/// The L2 cache of one core in bytes, as Linux reports it (1 MiB where it does not say).
///
/// ```
/// assert!(tensorgraph_kernels::cpu::l2_bytes() >= 64 << 10);
/// ```
pub fn l2_bytes() -> usize {
    static L2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L2.get_or_init(|| data_cache(2).unwrap_or(1 << 20))
}

/// The size of cpu0's data (or unified) cache of `level` from sysfs.
fn data_cache(level: usize) -> Option<usize> {
    let read = |i: usize, f: &str| std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{i}/{f}"));
    (0..8).find_map(|i| {
        let at = read(i, "level").ok()?;
        let kind = read(i, "type").ok()?;
        if at.trim() != level.to_string() || kind.trim() == "Instruction" {
            return None;
        }
        let size = read(i, "size").ok()?;
        let size = size.trim();
        let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
        let n: usize = digits.parse().ok()?;
        Some(match unit {
            "K" => n << 10,
            "M" => n << 20,
            _ => n,
        })
    })
}

/// The vector instructions the f32 kernels use: the widest the CPU has, or fewer when the
/// environment variable `TENSORGRAPH_SIMD` (`avx512`, `avx2` or `portable`) asks for fewer (to
/// compare the paths, or to test each one on a machine that has them all; in any case, and any
/// other value means the widest). Read once.
///
/// Every level gives the same bits: the tiled products sum each element in the same order
/// whatever the vector width, and the portable loops are never contracted into FMAs.
///
/// ```
/// use tensorgraph_kernels::cpu::{simd, Simd};
/// assert!(matches!(simd(), Simd::Avx512 | Simd::Avx2 | Simd::Portable));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Plain Rust loops as the baseline target compiles them (SSE2 on x86-64), matrixmultiply
    /// for products.
    Portable,
    /// AVX2 with FMA: 8-lane f32 vectors, 16 registers.
    Avx2,
    /// AVX-512 F, BW, DQ and VL: 16-lane f32 vectors, 32 registers.
    Avx512,
}

/// The level every kernel uses (see [`Simd`]).
pub fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let asked = std::env::var("TENSORGRAPH_SIMD").map(|v| v.to_ascii_lowercase());
        let asked = match asked.as_deref() {
            Ok("portable") => Simd::Portable,
            Ok("avx2") => Simd::Avx2,
            _ => Simd::Avx512,
        };
        asked.min(detected())
    })
}

/// The widest level this CPU runs, whatever `TENSORGRAPH_SIMD` says.
pub(crate) fn detected() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            return Simd::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Simd::Avx2;
        }
    }
    Simd::Portable
}
