//! Max-min fair rates by progressive filling, re-solved only on the connected component that changed.
//!
//! The algorithm is the "bottleneck" form of water-filling (Bertsekas & Gallager, Data Networks §6.5.2; SimGrid
//! `src/kernel/lmm/fair_bottleneck.cpp`; /work/shared/reference/simulation.md §3.1): raise every unfrozen flow's
//! rate together; a link whose fair share `remaining / unfrozen` is the smallest saturates and freezes its flows;
//! a flow that reaches its own cap freezes too. All links tied at the current level (relative 1e-12) freeze in one
//! round, so symmetric traffic needs few rounds. Like SimGrid's "selective update", a change re-solves only the
//! flows and links reachable from the changed flows through shared links.
//!
//! Flows are kept in slots that are reused (lowest free slot last freed first), links and flows are scanned in
//! index order, and ties freeze together: the result is deterministic.

/// Relative tolerance under which two fair shares count as the same level.
const LEVEL_TOLERANCE: f64 = 1e-12;

#[derive(Debug, Clone)]
struct Slot {
    path: Vec<u32>,
    cap_bytes_per_s: f64,
    rate_bytes_per_s: f64,
    active: bool,
}

/// Links with capacities and the flows crossing them, with every active flow's max-min fair rate.
#[derive(Debug, Clone, Default)]
pub struct MaxMinSolver {
    capacity: Vec<f64>,
    link_flows: Vec<Vec<u32>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    dirty_links: Vec<u32>,
    dirty_flows: Vec<u32>,
    // Scratch reused across solves (indexed by link / slot; marked with `epoch`).
    link_mark: Vec<u32>,
    flow_mark: Vec<u32>,
    epoch: u32,
    remaining: Vec<f64>,
    unfrozen: Vec<u32>,
    frozen: Vec<bool>,
    comp_links: Vec<u32>,
    comp_flows: Vec<u32>,
}

impl MaxMinSolver {
    /// A solver over links with these capacities (bytes/s); link `i` is `capacities[i]`.
    pub fn new(capacities: &[f64]) -> MaxMinSolver {
        let n = capacities.len();
        MaxMinSolver {
            capacity: capacities.to_vec(),
            link_flows: vec![Vec::new(); n],
            link_mark: vec![0; n],
            remaining: vec![0.0; n],
            unfrozen: vec![0; n],
            ..MaxMinSolver::default()
        }
    }

    /// Number of links.
    pub fn num_links(&self) -> usize {
        self.capacity.len()
    }

    /// Adds a flow over `path` (link indices, each below `num_links`) with an optional rate cap
    /// (`f64::INFINITY` for none). Its rate is 0 until the next [`MaxMinSolver::solve`].
    pub fn add(&mut self, path: &[u32], cap_bytes_per_s: f64) -> u32 {
        let slot = Slot { path: path.to_vec(), cap_bytes_per_s, rate_bytes_per_s: 0.0, active: true };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                self.flow_mark.push(0);
                self.frozen.push(false);
                (self.slots.len() - 1) as u32
            }
        };
        for &link in path {
            self.link_flows[link as usize].push(id);
            self.dirty_links.push(link);
        }
        self.dirty_flows.push(id);
        id
    }

    /// Removes a flow; the bandwidth it held goes to the others at the next solve.
    pub fn remove(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.active, "flow {id} removed twice");
        slot.active = false;
        slot.rate_bytes_per_s = 0.0;
        let path = std::mem::take(&mut slot.path);
        for &link in &path {
            let flows = &mut self.link_flows[link as usize];
            if let Some(pos) = flows.iter().position(|f| *f == id) {
                flows.swap_remove(pos);
            }
            self.dirty_links.push(link);
        }
        self.slots[id as usize].path = path;
        self.free.push(id);
    }

    /// Current rate of a flow, bytes/s.
    pub fn rate(&self, id: u32) -> f64 {
        self.slots[id as usize].rate_bytes_per_s
    }

    /// Whether slot `id` holds an active flow.
    pub fn is_active(&self, id: u32) -> bool {
        self.slots.get(id as usize).is_some_and(|s| s.active)
    }

    /// Re-solves the components touched since the last call; appends the flows whose rate may have changed to
    /// `changed` (each once, in the order found).
    pub fn solve(&mut self, changed: &mut Vec<u32>) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.link_mark.iter_mut().for_each(|m| *m = 0);
            self.flow_mark.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let mut seeds_links = std::mem::take(&mut self.dirty_links);
        let mut seeds_flows = std::mem::take(&mut self.dirty_flows);
        // One component at a time, so each water-filling round scans only its own component.
        for seed_idx in 0..seeds_links.len() + seeds_flows.len() {
            self.comp_links.clear();
            self.comp_flows.clear();
            if seed_idx < seeds_links.len() {
                let link = seeds_links[seed_idx];
                if self.link_mark[link as usize] == epoch {
                    continue;
                }
                self.link_mark[link as usize] = epoch;
                self.comp_links.push(link);
            } else {
                let flow = seeds_flows[seed_idx - seeds_links.len()];
                if !self.slots[flow as usize].active || self.flow_mark[flow as usize] == epoch {
                    continue;
                }
                self.flow_mark[flow as usize] = epoch;
                self.comp_flows.push(flow);
            }
            self.collect_component(epoch);
            self.fill_component();
            changed.extend_from_slice(&self.comp_flows);
        }
        seeds_links.clear();
        seeds_flows.clear();
        self.dirty_links = seeds_links;
        self.dirty_flows = seeds_flows;
    }

    /// Breadth-first over links ↔ flows from the seeds already in `comp_links`/`comp_flows`.
    fn collect_component(&mut self, epoch: u32) {
        let (mut li, mut fi) = (0, 0);
        while li < self.comp_links.len() || fi < self.comp_flows.len() {
            while li < self.comp_links.len() {
                let link = self.comp_links[li] as usize;
                li += 1;
                for &flow in &self.link_flows[link] {
                    if self.flow_mark[flow as usize] != epoch {
                        self.flow_mark[flow as usize] = epoch;
                        self.comp_flows.push(flow);
                    }
                }
            }
            while fi < self.comp_flows.len() {
                let flow = self.comp_flows[fi] as usize;
                fi += 1;
                for &link in &self.slots[flow].path {
                    if self.link_mark[link as usize] != epoch {
                        self.link_mark[link as usize] = epoch;
                        self.comp_links.push(link);
                    }
                }
            }
        }
    }

    /// Progressive filling over the current component.
    fn fill_component(&mut self) {
        for &link in &self.comp_links {
            let l = link as usize;
            self.remaining[l] = self.capacity[l];
            self.unfrozen[l] = self.link_flows[l].len() as u32;
        }
        let mut left = 0usize;
        for &flow in &self.comp_flows {
            self.frozen[flow as usize] = false;
            left += 1;
        }
        while left > 0 {
            let mut level = f64::INFINITY;
            for &link in &self.comp_links {
                let l = link as usize;
                if self.unfrozen[l] > 0 {
                    level = level.min(self.remaining[l].max(0.0) / self.unfrozen[l] as f64);
                }
            }
            for &flow in &self.comp_flows {
                if !self.frozen[flow as usize] {
                    level = level.min(self.slots[flow as usize].cap_bytes_per_s);
                }
            }
            let threshold = if level.is_finite() { level * (1.0 + LEVEL_TOLERANCE) } else { f64::INFINITY };
            // Freeze flows on saturated links, then flows at their own cap.
            for ci in 0..self.comp_links.len() {
                let l = self.comp_links[ci] as usize;
                if self.unfrozen[l] == 0 || self.remaining[l].max(0.0) / self.unfrozen[l] as f64 > threshold {
                    continue;
                }
                for fi in 0..self.link_flows[l].len() {
                    let flow = self.link_flows[l][fi];
                    if !self.frozen[flow as usize] {
                        self.freeze(flow, level);
                        left -= 1;
                    }
                }
            }
            for ci in 0..self.comp_flows.len() {
                let flow = self.comp_flows[ci];
                if !self.frozen[flow as usize] && self.slots[flow as usize].cap_bytes_per_s <= threshold {
                    let rate = self.slots[flow as usize].cap_bytes_per_s.min(level);
                    self.freeze(flow, rate);
                    left -= 1;
                }
            }
        }
    }

    fn freeze(&mut self, flow: u32, rate: f64) {
        let f = flow as usize;
        self.frozen[f] = true;
        self.slots[f].rate_bytes_per_s = rate;
        for &link in &self.slots[f].path {
            let l = link as usize;
            self.remaining[l] -= rate;
            self.unfrozen[l] -= 1;
        }
    }
}
