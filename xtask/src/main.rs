//! Project automation that is not part of the product.
fn main() {}
