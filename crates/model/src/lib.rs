//! Model specs, presets, Hugging Face import, exact parameter counts, FLOPs, memory per GPU and scaling laws.
