//! Builds a small scoped graph, prints its text dump, and runs it.
//!
//!     cargo run --example graph_basics

use ndarray::array;
use tensorgraph::prelude::*;

fn main() -> Result<()> {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x")?;
    let w = g.variable(&g.constant(array![[1.0f32], [2.0], [3.0]]).named("w_init")?, "w", true)?;
    let (y, total) = g.name_scope("model", || {
        let y = math::matmul(&x, &w, false, false)?;
        let y = nn::relu(&math::sub(&y, &g.scalar(4.0, DType::F32)?)?)?;
        let total = math::reduce_sum(&y, None).named("total")?;
        Ok((y, total))
    })?;
    // A branch whose placeholder is never fed: pruning leaves it out of every run below.
    let unused = g.placeholder(DType::F32, [None]).named("unused")?;
    g.name_scope("unused_branch", || math::square(&unused))?;

    println!("{}", g.to_text());

    let sess = Session::new(&g)?;
    sess.run(&g.global_variables_initializer()?, &[])?;
    let x_value = array![[1.0f32, 1.0, 1.0], [0.0, 0.0, 1.0]];
    let (y_value, total_value) = sess.run((&y, &total), feed! {x => &x_value})?;
    println!("y =\n{}", y_value.as_f32().expect("float32"));
    let total_value: f32 = total_value.try_into()?;
    println!("total = {total_value}");
    Ok(())
}
