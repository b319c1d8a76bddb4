//! Data sets. MNIST ships with the repository under `data/mnist/`.

pub mod mnist;
