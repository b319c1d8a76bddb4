//! What the machine offers, as the OS reports it: cache sizes for blocking decisions and the
//! worker threads kernels split work across.

/// Worker threads kernels split work across (rayon's pool), at least 1.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// The L2 cache of one core in bytes, as Linux reports it (1 MiB where it does not say).
///
/// ```
/// assert!(tensorgraph_kernels::cpu::l2_bytes() >= 64 << 10);
/// ```
pub fn l2_bytes() -> usize {
    static L2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L2.get_or_init(|| {
        let read =
            |i: usize, f: &str| std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{i}/{f}"));
        (0..8)
            .find_map(|i| {
                let level = read(i, "level").ok()?;
                let kind = read(i, "type").ok()?;
                if level.trim() != "2" || kind.trim() == "Instruction" {
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
            .unwrap_or(1 << 20)
    })
}
