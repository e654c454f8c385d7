//! The bottom: names nothing.

pub const VALUE: u32 = 1;

#[macro_export]
macro_rules! shout {
    () => {};
}
