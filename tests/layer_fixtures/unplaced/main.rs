mod high;
mod low;
mod stray;
