pub mod inner;

pub const VALUE: u32 = 2;

#[macro_export]
macro_rules! up {
    () => {
        crate::high::Thing
    };
}
