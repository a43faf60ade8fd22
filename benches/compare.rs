//! Benchmark (being built).
fn main() {}
