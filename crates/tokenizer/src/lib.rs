//! Byte-level BPE: train, encode, decode, save and load rank files.
