//! Data: 2-D toys, MNIST-style idx files, image folders, .npy arrays, and the seeded,
//! double-buffered batcher that feeds training.

pub mod rng;
pub mod toy;
