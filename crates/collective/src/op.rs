//! What a collective does (`Op`), how it is run (`Algorithm`, `Protocol`), and nccl-tests' size and
//! bus-bandwidth conventions.

use std::fmt;
use std::str::FromStr;

use crate::error::CollectiveError;

/// A collective operation (or point-to-point transfer) over a group of ranks.
///
/// Sizes follow nccl-tests (`doc/PERFORMANCE.md`): `bytes` is the whole buffer for all-reduce, broadcast and
/// reduce; the gathered total (n × per-rank part) for all-gather and reduce-scatter; each rank's total send
/// buffer for all-to-all; the message for send/recv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Every rank ends with the element-wise sum of all ranks' buffers.
    AllReduce,
    /// Every rank ends with the concatenation of all ranks' parts.
    AllGather,
    /// Every rank ends with its part of the element-wise sum.
    ReduceScatter,
    /// Every rank sends a distinct part to every other rank.
    AllToAll,
    /// The root's buffer is copied to every rank.
    Broadcast,
    /// The element-wise sum lands on the root.
    Reduce,
    /// One rank sends a message to another (the first two ranks of the group).
    SendRecv,
}

impl Op {
    /// Every operation, in a fixed order (the index used by per-op tables).
    pub const ALL: [Op; 7] = [
        Op::AllReduce,
        Op::AllGather,
        Op::ReduceScatter,
        Op::AllToAll,
        Op::Broadcast,
        Op::Reduce,
        Op::SendRecv,
    ];

    /// Position in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kebab-case name used on the command line (`all-reduce`).
    pub fn name(self) -> &'static str {
        match self {
            Op::AllReduce => "all-reduce",
            Op::AllGather => "all-gather",
            Op::ReduceScatter => "reduce-scatter",
            Op::AllToAll => "all-to-all",
            Op::Broadcast => "broadcast",
            Op::Reduce => "reduce",
            Op::SendRecv => "send-recv",
        }
    }

    /// nccl-tests' factor from algorithm bandwidth to bus bandwidth for `n_ranks` ranks
    /// (nccl-tests `src/*.cu` `*GetBw`; /work/shared/reference/simulation.md §1.7).
    pub fn busbw_factor(self, n_ranks: usize) -> f64 {
        let n = n_ranks as f64;
        match self {
            Op::AllReduce => 2.0 * (n - 1.0) / n,
            Op::AllGather | Op::ReduceScatter | Op::AllToAll => (n - 1.0) / n,
            Op::Broadcast | Op::Reduce | Op::SendRecv => 1.0,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = CollectiveError;

    /// Accepts the kebab-case names and nccl-tests/public.toml spellings (`all_reduce`, `allreduce`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key: String = text.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        let op = match key.as_str() {
            "allreduce" => Op::AllReduce,
            "allgather" => Op::AllGather,
            "reducescatter" => Op::ReduceScatter,
            "alltoall" => Op::AllToAll,
            "broadcast" | "bcast" => Op::Broadcast,
            "reduce" => Op::Reduce,
            "sendrecv" | "p2p" => Op::SendRecv,
            _ => {
                return Err(CollectiveError::UnknownName {
                    what: "operation",
                    value: text.to_owned(),
                    expected: "all-reduce, all-gather, reduce-scatter, all-to-all, broadcast, reduce, send-recv",
                });
            }
        };
        Ok(op)
    }
}

/// How a collective is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// NCCL's ring: 2(n−1) steps for all-reduce, n−1 for all-gather / reduce-scatter.
    Ring,
    /// NCCL's double binary tree (all-reduce only): reduce up, broadcast down, pipelined.
    Tree,
    /// In-switch reduction over NVSwitch (NVLink SHARP), single node.
    Nvls,
    /// NVLS inside each node, a tree between nodes.
    NvlsTree,
    /// NCCL's PAT (parallel aggregated trees) for all-gather / reduce-scatter with one GPU per node.
    Pat,
    /// Intra-node reduce-scatter, inter-node all-reduce on each rail, intra-node all-gather.
    Hierarchical,
    /// Every pair of ranks exchanges directly (all-to-all; also send/recv).
    Direct,
}

impl Algorithm {
    /// Every algorithm, in a fixed order (the index used by per-algorithm tables).
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Ring,
        Algorithm::Tree,
        Algorithm::Nvls,
        Algorithm::NvlsTree,
        Algorithm::Pat,
        Algorithm::Hierarchical,
        Algorithm::Direct,
    ];

    /// Position in [`Algorithm::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lower-case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Tree => "tree",
            Algorithm::Nvls => "nvls",
            Algorithm::NvlsTree => "nvls-tree",
            Algorithm::Pat => "pat",
            Algorithm::Hierarchical => "hierarchical",
            Algorithm::Direct => "direct",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = CollectiveError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.to_lowercase().replace('_', "-");
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == lower || (lower == "hier" && *a == Algorithm::Hierarchical))
            .ok_or_else(|| CollectiveError::UnknownName {
                what: "algorithm",
                value: text.to_owned(),
                expected: "auto, ring, tree, nvls, nvls-tree, pat, hierarchical, direct",
            })
    }
}

/// NCCL's wire protocols (`src/include/plugin/nccl_tuner.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// 8-byte lines of 4 data bytes + 4 flag bytes: lowest latency, half the bandwidth.
    Ll,
    /// 128-byte lines with 120 data bytes.
    Ll128,
    /// Plain copies with flags per step: highest bandwidth, highest latency.
    Simple,
}

impl Protocol {
    /// Every protocol, in NCCL's index order.
    pub const ALL: [Protocol; 3] = [Protocol::Ll, Protocol::Ll128, Protocol::Simple];

    /// Position in [`Protocol::ALL`] (NCCL's protocol index).
    pub fn index(self) -> usize {
        self as usize
    }

    /// NCCL's spelling (`LL`, `LL128`, `Simple`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ll => "LL",
            Protocol::Ll128 => "LL128",
            Protocol::Simple => "Simple",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = CollectiveError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Protocol::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(text)).ok_or_else(|| {
            CollectiveError::UnknownName {
                what: "protocol",
                value: text.to_owned(),
                expected: "LL, LL128, Simple",
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(op.name().parse::<Op>().unwrap(), op);
        }
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
        }
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>().unwrap(), p);
        }
        assert_eq!("all_reduce".parse::<Op>().unwrap(), Op::AllReduce);
        let err = "allsum".parse::<Op>().unwrap_err().to_string();
        assert!(err.contains("allsum") && err.contains("all-reduce"), "{err}");
    }

    #[test]
    fn busbw_factors_follow_nccl_tests() {
        assert!((Op::AllReduce.busbw_factor(8) - 1.75).abs() < 1e-12);
        assert!((Op::AllGather.busbw_factor(8) - 0.875).abs() < 1e-12);
        assert_eq!(Op::Broadcast.busbw_factor(8), 1.0);
    }
}
