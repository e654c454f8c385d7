mod low;
mod left;
mod right;
mod high;
