//! `hooknorm serve` (in progress).
