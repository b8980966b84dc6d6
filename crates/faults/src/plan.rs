//! Fault plans: timed faults that both the campaign simulator and the live daemons consume.
//!
//! A plan is a list of `(time_s, target, kind)` entries, written by hand or sampled from a
//! [`FailureModel`](crate::FailureModel) with a seed ([`crate::sample_plan`]). It serialises to TOML and JSON:
//!
//! ```toml
//! [[faults]]
//! time_s = 3600.0
//! target = { rank = 17 }
//! kind = "kill"
//! permanent = true            # the node does not come back: a spare replaces it
//! cause = "Faulty GPU"        # optional, for reports
//!
//! [[faults]]
//! time_s = 7200.0
//! target = "job"
//! kind = "slow"
//! factor = 1.5
//! ```
//!
//! Kinds: `kill {permanent}`, `hang {duration_s}` (no duration: until a watchdog fires), `slow {factor}`,
//! `partition {ranks}`, `corrupt_checkpoint {step}`, and `drain` (a planned stop: checkpoint, stop, restart).

use serde::{Deserialize, Serialize};

use crate::error::FaultsError;

/// A list of timed faults, sorted by time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// The seed a sampled plan was drawn with; `None` for a hand-written plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The faults, in time order.
    #[serde(default)]
    pub faults: Vec<FaultEntry>,
}

/// One fault: when, where and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEntry {
    /// Seconds since the start of the job.
    pub time_s: f64,
    /// Which part of the job it hits.
    pub target: FaultTarget,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// The root cause, for reports ("Faulty GPU"); defaults to the kind's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Where a fault lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// One rank (one GPU's process), numbered like the job's ranks.
    Rank(u32),
    /// Every rank of one node.
    Node(u32),
    /// The whole job.
    Job,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The target's processes die. `permanent`: the hardware is gone too, so the job needs a spare node.
    Kill {
        /// The node does not come back until repaired.
        #[serde(default)]
        permanent: bool,
    },
    /// The target stops making progress for `duration_s` (`None`: until something kills it).
    Hang {
        /// How long the hang lasts, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
    },
    /// The target runs `factor` times slower (a straggler) until the job next restarts.
    Slow {
        /// Slowdown factor, ≥ 1.
        factor: f64,
    },
    /// These ranks lose the network: collectives with them stall.
    Partition {
        /// The ranks cut off.
        ranks: Vec<u32>,
    },
    /// The checkpoint of this step is damaged; restoring it fails its checksum and falls back to an older one.
    CorruptCheckpoint {
        /// The optimizer step the checkpoint holds.
        step: u64,
    },
    /// Planned stop: checkpoint, stop, restart.
    Drain,
}

impl FaultKind {
    /// The kind's name as written in plans ("kill", "corrupt_checkpoint").
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill { .. } => "kill",
            FaultKind::Hang { .. } => "hang",
            FaultKind::Slow { .. } => "slow",
            FaultKind::Partition { .. } => "partition",
            FaultKind::CorruptCheckpoint { .. } => "corrupt_checkpoint",
            FaultKind::Drain => "drain",
        }
    }
}

impl FaultEntry {
    /// The cause for reports: `cause` when given, else the kind's name.
    pub fn cause_name(&self) -> &str {
        self.cause.as_deref().unwrap_or_else(|| self.kind.name())
    }
}

impl FaultPlan {
    /// Parses a plan from TOML (`[[faults]]` tables), sorts it by time and checks every value.
    pub fn from_toml_str(text: &str) -> Result<FaultPlan, FaultsError> {
        let plan: FaultPlan = toml::from_str(text)
            .map_err(|e| FaultsError::Parse { what: "fault plan (TOML)".into(), message: e.to_string() })?;
        plan.checked()
    }

    /// Parses a plan from JSON (`{"faults": [...]}`), sorts it by time and checks every value.
    pub fn from_json_str(text: &str) -> Result<FaultPlan, FaultsError> {
        let plan: FaultPlan = serde_json::from_str(text)
            .map_err(|e| FaultsError::Parse { what: "fault plan (JSON)".into(), message: e.to_string() })?;
        plan.checked()
    }

    /// Parses JSON when the text starts with `{`, else TOML.
    pub fn parse(text: &str) -> Result<FaultPlan, FaultsError> {
        if text.trim_start().starts_with('{') {
            FaultPlan::from_json_str(text)
        } else {
            FaultPlan::from_toml_str(text)
        }
    }

    /// The plan as TOML text.
    pub fn to_toml_string(&self) -> String {
        match toml::to_string(self) {
            Ok(text) => text,
            Err(e) => unreachable!("a fault plan always serialises: {e}"),
        }
    }

    fn checked(mut self) -> Result<FaultPlan, FaultsError> {
        for (index, f) in self.faults.iter().enumerate() {
            let bad = |name: &str, value: f64, expected: &str| FaultsError::OutOfRange {
                name: format!("fault #{index} {name}"),
                value,
                expected: expected.into(),
            };
            if !(f.time_s.is_finite() && f.time_s >= 0.0) {
                return Err(bad("time_s", f.time_s, "a finite time ≥ 0 s"));
            }
            match &f.kind {
                FaultKind::Hang { duration_s: Some(d) } if !(d.is_finite() && *d >= 0.0) => {
                    return Err(bad("duration_s", *d, "a finite duration ≥ 0 s"));
                }
                FaultKind::Slow { factor } if !(factor.is_finite() && *factor >= 1.0) => {
                    return Err(bad("factor", *factor, "a finite slowdown factor ≥ 1"));
                }
                FaultKind::Partition { ranks } if ranks.is_empty() => {
                    return Err(bad("ranks", 0.0, "at least one rank"));
                }
                _ => {}
            }
        }
        self.faults.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
        Ok(self)
    }

    /// Checks that every target exists in a job of `gpus` ranks and `nodes` nodes.
    pub fn check_targets(&self, gpus: u64, nodes: u64) -> Result<(), FaultsError> {
        for (index, f) in self.faults.iter().enumerate() {
            let err = |target: String, available: String| FaultsError::BadTarget {
                index,
                time_s: f.time_s,
                target,
                available,
            };
            match f.target {
                FaultTarget::Rank(r) if u64::from(r) >= gpus => {
                    return Err(err(format!("rank {r}"), format!("{gpus} ranks (0..{gpus})")));
                }
                FaultTarget::Node(n) if u64::from(n) >= nodes => {
                    return Err(err(format!("node {n}"), format!("{nodes} nodes (0..{nodes})")));
                }
                _ => {}
            }
            if let FaultKind::Partition { ranks } = &f.kind
                && let Some(r) = ranks.iter().find(|r| u64::from(**r) >= gpus)
            {
                return Err(err(format!("partition rank {r}"), format!("{gpus} ranks (0..{gpus})")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FaultPlan {
        let entry = |time_s, target, kind, cause: Option<&str>| FaultEntry {
            time_s,
            target,
            kind,
            cause: cause.map(str::to_string),
        };
        FaultPlan {
            seed: Some(3),
            faults: vec![
                entry(10.0, FaultTarget::Rank(3), FaultKind::Kill { permanent: true }, Some("Faulty GPU")),
                entry(20.0, FaultTarget::Node(1), FaultKind::Hang { duration_s: Some(5.0) }, None),
                entry(25.0, FaultTarget::Node(1), FaultKind::Hang { duration_s: None }, None),
                entry(30.0, FaultTarget::Job, FaultKind::Slow { factor: 1.5 }, None),
                entry(40.0, FaultTarget::Job, FaultKind::Partition { ranks: vec![0, 1] }, None),
                entry(50.0, FaultTarget::Job, FaultKind::CorruptCheckpoint { step: 12 }, None),
                entry(60.0, FaultTarget::Job, FaultKind::Drain, Some("Planned Maintenance")),
            ],
        }
    }

    #[test]
    fn plans_round_trip_through_toml_and_json() {
        let plan = sample();
        let toml_text = plan.to_toml_string();
        assert_eq!(FaultPlan::parse(&toml_text).unwrap(), plan, "{toml_text}");
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(FaultPlan::parse(&json).unwrap(), plan, "{json}");
        assert!(json.contains(r#""target":{"rank":3},"kind":"kill","permanent":true"#), "{json}");
    }

    #[test]
    fn hand_written_toml_reads_with_defaults_and_is_sorted() {
        let text = r#"
            [[faults]]
            time_s = 90
            target = "job"
            kind = "drain"

            [[faults]]
            time_s = 5
            target = { node = 2 }
            kind = "kill"
        "#;
        let plan = FaultPlan::parse(text).unwrap();
        assert_eq!(plan.faults[0].kind, FaultKind::Kill { permanent: false });
        assert_eq!(plan.faults[0].cause_name(), "kill");
        assert_eq!(plan.faults[1].target, FaultTarget::Job);
        assert!(plan.check_targets(24, 3).is_ok());
        let err = plan.check_targets(16, 2).unwrap_err().to_string();
        assert_eq!(err, "fault #0 at 5 s targets node 2, but the job has 2 nodes (0..2)");
    }

    #[test]
    fn bad_values_are_refused_with_their_value() {
        let err =
            FaultPlan::parse("[[faults]]\ntime_s = 1\ntarget = \"job\"\nkind = \"slow\"\nfactor = 0.5\n")
                .unwrap_err()
                .to_string();
        assert_eq!(err, "fault #0 factor = 0.5: expected a finite slowdown factor ≥ 1");
        let err = FaultPlan::parse("[[faults]]\ntime_s = 1\ntarget = \"job\"\nkind = \"explode\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fault plan (TOML):") && err.contains("explode"), "{err}");
        let err = FaultPlan::parse(r#"{"faults":[{"time_s":-1,"target":"job","kind":"drain"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("time_s = -1"), "{err}");
    }
}
