//! NCCL's own cost model: its constants and a port of its tuning tables over a [`crate::CommShape`].

pub(crate) mod constants;
pub(crate) mod tune;
