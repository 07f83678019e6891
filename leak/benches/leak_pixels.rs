//! L2 for images: index build time and memory over 1,500 64×64 grayscale training images
//! (6.1 M pixels), and scan throughput over pseudo-random f32 weights (100 MiB by default)
//! with 1 and 2 threads; then an all-zero buffer, a planted run, and an RGB normalized set
//! (where runs across channel boundaries are decoded too).
//!
//! `cargo bench -p airlock-leak --bench leak_pixels -- [MiB]`

use std::time::Instant;

use airlock_leak::pixels::{PixelIndex, PixelParams, PixelSource};

const IMAGES: usize = 1500;
const SIDE: usize = 64;

fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let len = mib << 20;

    let pixels = images(IMAGES, 1, SIDE, 1);
    let (mean, std) = ([0.45f32], [0.22f32]);
    let src = PixelSource {
        pixels: &pixels,
        channels: 1,
        height: SIDE,
        width: SIDE,
        normalization: Some((&mean, &std)),
    };
    let rss = peak_rss_mib();
    let t = Instant::now();
    let index = PixelIndex::build(&src, PixelParams::default());
    let build = t.elapsed();
    let s = index.stats();
    println!(
        "index over {IMAGES} images of 1×{SIDE}×{SIDE} ({} pixels): build {build:.2?}, {:.1} MiB held, peak RSS +{:.0} MiB",
        pixels.len(),
        s.memory_bytes as f64 / (1 << 20) as f64,
        peak_rss_mib() - rss
    );
    println!("  {s:?}");

    let t = Instant::now();
    let buf = weights(len, 2);
    println!(
        "buffer: {mib} MiB of pseudo-random f32 weights filled in {:.2?}",
        t.elapsed()
    );
    for threads in [1usize, 2] {
        let _ = index.scan(&buf[..len.min(1 << 20)], threads);
        let (t, cpu) = (Instant::now(), thread_cpu_secs());
        let found = index.scan(&buf, threads);
        let secs = t.elapsed().as_secs_f64();
        // On a shared machine the wall clock counts other processes' time too; the CPU
        // time of the scanning thread (1 thread: this one) does not.
        let cpu = if threads == 1 {
            format!(
                ", {:.0} MB/s of CPU time",
                len as f64 / (thread_cpu_secs() - cpu) / 1e6
            )
        } else {
            String::new()
        };
        println!(
            "scan {threads} thread(s): {secs:.3} s, {:.0} MB/s{cpu}, {} match(es)",
            len as f64 / secs / 1e6,
            found.len()
        );
        for m in found.iter().take(5) {
            println!("  false alarm: {m:?}");
        }
    }

    let zeros = vec![0u8; len];
    let (t, cpu) = (Instant::now(), thread_cpu_secs());
    let found = index.scan(&zeros, 1);
    println!(
        "all-zero buffer, 1 thread: {:.0} MB/s, {:.0} MB/s of CPU time, {} match(es)",
        len as f64 / t.elapsed().as_secs_f64() / 1e6,
        len as f64 / (thread_cpu_secs() - cpu) / 1e6,
        found.len()
    );

    // A planted normalized f16 run, to show the index finds what the scan above did not.
    let mut planted = buf[..len.min(8 << 20)].to_vec();
    let (image, pixel, at) = (1234, 777, 1_000_001);
    for k in 0..16 {
        let x = f32::from(pixels[image * SIDE * SIDE + pixel + k]);
        let v = half::f16::from_f32((x / 255.0 - mean[0]) / std[0]);
        planted[at + 2 * k..at + 2 * k + 2].copy_from_slice(&v.to_le_bytes());
    }
    println!("planted f16 normalized run: {:?}", index.scan(&planted, 2));

    rgb(len.min(32 << 20), &buf);
}

/// 500 RGB 32×32 images with ImageNet statistics: build and scan.
fn rgb(len: usize, buf: &[u8]) {
    let pixels = images(500, 3, 32, 3);
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let src = PixelSource {
        pixels: &pixels,
        channels: 3,
        height: 32,
        width: 32,
        normalization: Some((&mean, &std)),
    };
    let t = Instant::now();
    let index = PixelIndex::build(&src, PixelParams::default());
    let build = t.elapsed();
    let t = Instant::now();
    let found = index.scan(&buf[..len], 2);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "RGB: 500 images of 3×32×32: build {build:.2?} ({:.1} MiB); scan of {} MiB with 2 threads {:.0} MB/s, {} match(es)",
        index.stats().memory_bytes as f64 / (1 << 20) as f64,
        len >> 20,
        len as f64 / secs / 1e6,
        found.len()
    );
}

/// Textured images with dark borders: a wave plus noise inside, black margins of 6 pixels.
fn images(n: usize, channels: usize, side: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(n * channels * side * side);
    for _ in 0..n {
        let phase = (next() % 628) as f32 / 100.0;
        for c in 0..channels {
            for y in 0..side {
                for col in 0..side {
                    let border = y < 6 || col < 6 || y >= side - 6 || col >= side - 6;
                    let i = (c * side + y) * side + col;
                    let noise = (next() % 60) as f32 - 30.0;
                    let v = 128.0 + 70.0 * ((i as f32) / 11.0 + phase).sin() + noise;
                    out.push(if border { 0 } else { v.clamp(0.0, 255.0) as u8 });
                }
            }
        }
    }
    out
}

/// Pseudo-random f32 weights of a trained layer's magnitude.
fn weights(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    let mut out = vec![0u8; len];
    for c in out.chunks_exact_mut(4) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = ((x >> 40) as f32 / 16_777_216.0 - 0.5) * 0.16;
        c.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// CPU time of the calling thread (Linux `schedstat`), in seconds; 0 elsewhere.
fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Peak resident set size of this process (Linux), in MiB; 0 elsewhere.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
