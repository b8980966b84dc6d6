//! Rank placement: which global rank holds which (tp, cp, dp, pp) coordinate, and who is in each group.

use serde::{Deserialize, Serialize};

use crate::plan::{ParallelPlan, RankOrder};

/// The parallel dimensions a communication group can span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Ranks holding slices of the same layers (tensor parallelism).
    Tp,
    /// Ranks holding slices of the same sequence (context parallelism).
    Cp,
    /// Replicas of the same model shard (data parallelism; gradient reduction, FSDP gathers).
    Dp,
    /// Data-and-context-parallel ranks of the same shard: the gradient reduction group when cp > 1.
    DpCp,
    /// Ranks exchanging tokens in a MoE layer (expert parallelism): `ep` consecutive ranks of the DP×CP group.
    Ep,
}

impl GroupKind {
    /// A short label for reports and traces.
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Tp => "tp",
            GroupKind::Cp => "cp",
            GroupKind::Dp => "dp",
            GroupKind::DpCp => "dp-cp",
            GroupKind::Ep => "ep",
        }
    }
}

/// A rank's position in the plan's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Coord {
    /// Tensor-parallel index.
    pub tp: u32,
    /// Context-parallel index.
    pub cp: u32,
    /// Data-parallel index.
    pub dp: u32,
    /// Pipeline stage.
    pub pp: u32,
}

/// The mapping between global ranks and grid coordinates for one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Tensor-parallel size.
    pub tp: u32,
    /// Context-parallel size.
    pub cp: u32,
    /// Data-parallel size.
    pub dp: u32,
    /// Pipeline-parallel size.
    pub pp: u32,
    /// Expert-parallel size (a divisor of dp·cp).
    pub ep: u32,
    /// Numbering order.
    pub order: RankOrder,
}

impl Layout {
    /// The layout of a plan.
    pub fn of(plan: &ParallelPlan) -> Layout {
        Layout { tp: plan.tp, cp: plan.cp, dp: plan.dp, pp: plan.pp, ep: plan.ep, order: plan.rank_order }
    }

    /// Total ranks.
    pub fn world(&self) -> u32 {
        self.tp * self.cp * self.dp * self.pp
    }

    /// Sizes in numbering order, fastest-varying first, with each dimension's tag.
    fn dims(&self) -> [(char, u32); 4] {
        match self.order {
            RankOrder::TpCpDpPp => [('t', self.tp), ('c', self.cp), ('d', self.dp), ('p', self.pp)],
            RankOrder::TpCpPpDp => [('t', self.tp), ('c', self.cp), ('p', self.pp), ('d', self.dp)],
        }
    }

    /// The coordinate of a global rank.
    pub fn coord(&self, rank: u32) -> Coord {
        let mut rest = rank;
        let mut c = Coord { tp: 0, cp: 0, dp: 0, pp: 0 };
        for (tag, size) in self.dims() {
            let v = rest % size;
            rest /= size;
            match tag {
                't' => c.tp = v,
                'c' => c.cp = v,
                'd' => c.dp = v,
                _ => c.pp = v,
            }
        }
        c
    }

    /// The global rank at a coordinate.
    pub fn rank(&self, c: Coord) -> u32 {
        let mut rank = 0;
        let mut stride = 1;
        for (tag, size) in self.dims() {
            let v = match tag {
                't' => c.tp,
                'c' => c.cp,
                'd' => c.dp,
                _ => c.pp,
            };
            rank += v * stride;
            stride *= size;
        }
        rank
    }

    /// Ranks in a group, in group order, and the group's index among groups of its kind.
    pub fn group_of(&self, rank: u32, kind: GroupKind) -> (u32, Vec<u32>) {
        let c = self.coord(rank);
        let members: Vec<u32> = match kind {
            GroupKind::Tp => (0..self.tp).map(|tp| self.rank(Coord { tp, ..c })).collect(),
            GroupKind::Cp => (0..self.cp).map(|cp| self.rank(Coord { cp, ..c })).collect(),
            GroupKind::Dp => (0..self.dp).map(|dp| self.rank(Coord { dp, ..c })).collect(),
            GroupKind::DpCp => (0..self.dp)
                .flat_map(|dp| (0..self.cp).map(move |cp| (dp, cp)))
                .map(|(dp, cp)| self.rank(Coord { dp, cp, ..c }))
                .collect(),
            GroupKind::Ep => {
                // EP groups are runs of `ep` consecutive members of the DP×CP group (cp fastest).
                let pos = c.dp * self.cp + c.cp;
                let start = pos / self.ep * self.ep;
                (start..start + self.ep)
                    .map(|p| self.rank(Coord { dp: p / self.cp, cp: p % self.cp, ..c }))
                    .collect()
            }
        };
        // Index the group by its first (smallest-coordinate) member, which is unique per group.
        (members[0], members)
    }

    /// The rank at the same (tp, cp, dp) position on pipeline stage `pp`.
    pub fn on_stage(&self, rank: u32, pp: u32) -> u32 {
        self.rank(Coord { pp, ..self.coord(rank) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(tp: u32, cp: u32, dp: u32, pp: u32) -> Layout {
        Layout { tp, cp, dp, pp, ep: 1, order: RankOrder::TpCpDpPp }
    }

    #[test]
    fn megatron_order_puts_tp_on_consecutive_ranks() {
        let l = layout(2, 1, 2, 2);
        assert_eq!(l.coord(0), Coord { tp: 0, cp: 0, dp: 0, pp: 0 });
        assert_eq!(l.coord(1), Coord { tp: 1, cp: 0, dp: 0, pp: 0 });
        assert_eq!(l.coord(2), Coord { tp: 0, cp: 0, dp: 1, pp: 0 });
        assert_eq!(l.coord(4), Coord { tp: 0, cp: 0, dp: 0, pp: 1 });
        assert_eq!(l.group_of(5, GroupKind::Tp).1, vec![4, 5]);
        assert_eq!(l.group_of(5, GroupKind::Dp).1, vec![5, 7]);
        assert_eq!(l.on_stage(5, 0), 1);
    }

    #[test]
    fn rank_and_coord_are_inverse() {
        for order in [RankOrder::TpCpDpPp, RankOrder::TpCpPpDp] {
            let l = Layout { tp: 4, cp: 2, dp: 3, pp: 5, ep: 1, order };
            for r in 0..l.world() {
                assert_eq!(l.rank(l.coord(r)), r);
            }
        }
    }

    #[test]
    fn ep_groups_partition_the_dp_cp_group() {
        let l = Layout { tp: 1, cp: 2, dp: 4, pp: 1, ep: 4, order: RankOrder::TpCpDpPp };
        assert_eq!(l.group_of(0, GroupKind::Ep).1, vec![0, 1, 2, 3]);
        assert_eq!(l.group_of(6, GroupKind::Ep).1, vec![4, 5, 6, 7]);
        assert_eq!(l.group_of(6, GroupKind::DpCp).1.len(), 8);
    }
}
