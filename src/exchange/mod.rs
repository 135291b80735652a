//! One request to one server, whatever carries it.

pub mod modern;
