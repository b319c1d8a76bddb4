//! The convolution-filter slide: applies its 3x3 kernels to an MNIST digit with our `conv2d` op
//! (all seven as the output channels of one filter tensor) and writes a labelled PNG grid.
//!
//!     cargo run --release --example filters -- --out docs/filters.png

mod common;

use clap::Parser;
use font8x8::UnicodeFonts;
use ndarray::{Array4, ArrayD};
use tensorgraph::data::mnist;
use tensorgraph::prelude::*;

#[derive(Parser)]
struct Args {
    /// Directory with the four MNIST .gz files.
    #[arg(long, default_value = "data/mnist")]
    data: String,
    /// Which test image to filter.
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Where to write the PNG (the README's picture is docs/filters.png: pass that to remake it).
    #[arg(long, default_value = "runs/filters.png")]
    out: String,
}

/// The slide's kernels (the table of Wikipedia's "Kernel (image processing)").
const FILTERS: [(&str, [[f32; 3]; 3], f32); 7] = [
    ("IDENTITY", [[0., 0., 0.], [0., 1., 0.], [0., 0., 0.]], 1.0),
    ("EDGE DETECTION 1", [[1., 0., -1.], [0., 0., 0.], [-1., 0., 1.]], 1.0),
    ("EDGE DETECTION 2", [[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]], 1.0),
    ("EDGE DETECTION 3", [[-1., -1., -1.], [-1., 8., -1.], [-1., -1., -1.]], 1.0),
    ("SHARPEN", [[0., -1., 0.], [-1., 5., -1.], [0., -1., 0.]], 1.0),
    ("BOX BLUR", [[1., 1., 1.], [1., 1., 1.], [1., 1., 1.]], 1.0 / 9.0),
    ("GAUSSIAN BLUR", [[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]], 1.0 / 16.0),
];

const SCALE: usize = 5; // pixels per MNIST pixel
const PANEL: usize = 28 * SCALE;
const LABEL: usize = 14;
const GAP: usize = 6;
const COLS: usize = 4;

fn main() {
    let args = Args::parse();
    common::main_with(|| run(&args));
}

fn run(args: &Args) -> Result<()> {
    let data = mnist::read_data_sets_with(&args.data, &mnist::Options { validation_size: 0, seed: Some(0) })?;
    if args.index >= data.test.num_examples() {
        return Err(tensorgraph::Error::BadFile {
            path: args.data.clone(),
            detail: format!("no test image {}", args.index),
        });
    }
    let image = data.test.images.row(args.index).to_owned().into_shape_with_order((1, 28, 28, 1)).expect("784 pixels");

    let g = Graph::new();
    let x = g.placeholder(DType::F32, [1, 28, 28, 1]).named("image")?;
    let kernels = Array4::from_shape_fn((3, 3, 1, FILTERS.len()), |(i, j, _, k)| FILTERS[k].1[i][j] * FILTERS[k].2);
    let w = g.constant(kernels).named("filters")?;
    let y = nn::conv2d(&x, &w, [1, 1, 1, 1], Padding::Same)?;
    let out = y.eval(&Session::new(&g)?, feed! {x => image})?;
    let out: ArrayD<f32> = out.into_f32().expect("float32 output");

    let rows = FILTERS.len().div_ceil(COLS);
    let (width, height) = (COLS * (PANEL + GAP) + GAP, rows * (PANEL + LABEL + GAP) + GAP);
    let mut canvas = vec![255u8; width * height];
    for (k, (name, _, _)) in FILTERS.iter().enumerate() {
        let (ox, oy) = (GAP + (k % COLS) * (PANEL + GAP), GAP + (k / COLS) * (PANEL + LABEL + GAP));
        draw_text(&mut canvas, width, ox, oy + 3, name);
        // Each panel is min-max normalised: negative edge responses show darker than zero.
        let vals: Vec<f32> = (0..784).map(|p| out[[0, p / 28, p % 28, k]]).collect();
        let (lo, hi) = vals.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        for (p, &v) in vals.iter().enumerate() {
            let shade = (255.0 * (1.0 - (v - lo) / (hi - lo).max(1e-6))) as u8; // ink is dark
            for dy in 0..SCALE {
                for dx in 0..SCALE {
                    canvas[(oy + LABEL + (p / 28) * SCALE + dy) * width + ox + (p % 28) * SCALE + dx] = shade;
                }
            }
        }
    }
    common::write_png(&args.out, width, height, &canvas)?;
    println!("wrote {} ({width}x{height}): {} filters applied to test image {}", args.out, FILTERS.len(), args.index);
    Ok(())
}

fn draw_text(canvas: &mut [u8], width: usize, x: usize, y: usize, text: &str) {
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else { continue };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    canvas[(y + row) * width + x + i * 8 + col] = 0;
                }
            }
        }
    }
}
