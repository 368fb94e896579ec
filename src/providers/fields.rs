//! PLACEHOLDER: typed field access for normalizers.
