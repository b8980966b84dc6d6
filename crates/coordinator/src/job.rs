//! The job file (TOML): model, cluster, plan and steps, the same inputs as `choir sim`, plus the emulation's
//! time and payload scales. [`parse`] checks it field by field; [`prepare`] turns it into the step program the
//! workers run, with the simulator's durations and step time.
//!
//! ```toml
//! model = "gpt2-124m"            # preset or config.json (paths are resolved by the caller)
//! cluster = "dgx-h100-superpod"  # preset or cluster TOML
//! steps = 10
//! seed = 0
//! time_scale = 10.0              # live seconds per simulated second
//! payload_scale = 1024           # emulated payload bytes = op bytes / payload_scale
//! [checkpoint]
//! every = 5                      # steps between checkpoints
//! keep = 3                       # committed checkpoints kept on disk
//! [plan]
//! tp = 1
//! pp = 2
//! dp = 2
//! global_batch = 8
//! seq = 1024
//! ```

use serde::Deserialize;

use crate::CoordinatorError;

/// The embedded default job: a small model, PP=2 × DP=2 on 4 single-GPU workers.
pub const DEFAULT_JOB_TOML: &str = include_str!("default_job.toml");

/// A job file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Name, used as the job id's prefix.
    #[serde(default = "default_name")]
    pub name: String,
    /// Model preset or Hugging Face config.json path.
    pub model: String,
    /// Cluster preset or cluster TOML path.
    pub cluster: String,
    /// Optimizer steps to run.
    pub steps: u32,
    /// Seed of the ranks' deterministic state.
    #[serde(default)]
    pub seed: u64,
    /// Live seconds per simulated second.
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// Emulated payload bytes = op bytes / payload_scale.
    #[serde(default = "default_payload_scale")]
    pub payload_scale: u64,
    /// Cap on one data-plane message's payload.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: u64,
    /// Checkpointing.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    /// The parallel plan.
    pub plan: PlanSection,
}

/// The `[checkpoint]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Steps between checkpoints (the last step is always checkpointed).
    pub every: u32,
    /// Committed checkpoints kept on disk (older ones are removed).
    pub keep: u32,
    /// Cap on one rank's emulated shard payload. The payload stands for the rank's weights and Adam state
    /// (bytes per parameter from the plan's precision) divided by `payload_scale`.
    pub max_shard_bytes: u64,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: 5, keep: 3, max_shard_bytes: 16 << 20 }
    }
}

/// The `[plan]` table: the flags of `choir sim` that a job needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// Tensor-parallel size.
    #[serde(default = "one")]
    pub tp: u32,
    /// Pipeline-parallel size.
    #[serde(default = "one")]
    pub pp: u32,
    /// Data-parallel size.
    #[serde(default = "one")]
    pub dp: u32,
    /// Context-parallel size.
    #[serde(default = "one")]
    pub cp: u32,
    /// Sequences per micro-batch.
    #[serde(default = "one")]
    pub micro_batch: u32,
    /// Sequences per optimizer step.
    pub global_batch: u32,
    /// Tokens per sequence.
    pub seq: u32,
    /// ZeRO stage.
    #[serde(default = "one_u8")]
    pub zero: u8,
    /// Pipeline schedule (gpipe, 1f1b, interleaved-1f1b, zb-h1).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Virtual stages per rank.
    #[serde(default = "one")]
    pub vp: u32,
    /// bf16, fp16 or fp8.
    #[serde(default = "default_precision")]
    pub precision: String,
    /// none, selective or full.
    #[serde(default = "default_recompute")]
    pub recompute: String,
}

fn default_name() -> String {
    "job".into()
}
fn default_time_scale() -> f64 {
    1e-3
}
fn default_payload_scale() -> u64 {
    1024
}
fn default_max_payload() -> u64 {
    64 << 10
}
fn one() -> u32 {
    1
}
fn one_u8() -> u8 {
    1
}
fn default_schedule() -> String {
    "1f1b".into()
}
fn default_precision() -> String {
    "bf16".into()
}
fn default_recompute() -> String {
    "none".into()
}

/// Parses and checks a job file; errors name the field and what was expected.
pub fn parse(text: &str) -> Result<JobFile, CoordinatorError> {
    let job: JobFile =
        toml::from_str(text).map_err(|e| CoordinatorError::Job(e.to_string().trim_end().to_string()))?;
    let bad = |field: &str, value: String, expected: &str| {
        Err(CoordinatorError::Job(format!("{field} = {value}: expected {expected}")))
    };
    if job.steps == 0 || job.steps > 1_000_000 {
        return bad("steps", job.steps.to_string(), "1 to 1000000");
    }
    if !(job.time_scale.is_finite() && job.time_scale > 0.0 && job.time_scale <= 1e6) {
        return bad(
            "time_scale",
            job.time_scale.to_string(),
            "a positive number of live seconds per simulated second",
        );
    }
    if job.payload_scale == 0 {
        return bad("payload_scale", "0".into(), "at least 1");
    }
    if job.max_payload_bytes > (rpc::net::MAX_MESSAGE_BYTES as u64) / 2 {
        return bad("max_payload_bytes", job.max_payload_bytes.to_string(), "at most 16 MiB");
    }
    if job.name.is_empty()
        || job.name.len() > 64
        || !job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("name", format!("{:?}", job.name), "1-64 characters of [A-Za-z0-9_-]");
    }
    if job.checkpoint.every == 0 {
        return bad("checkpoint.every", "0".into(), "at least 1 step");
    }
    if job.checkpoint.keep == 0 {
        return bad("checkpoint.keep", "0".into(), "at least 1 checkpoint");
    }
    if job.checkpoint.max_shard_bytes > rpc::MAX_SHARD_BYTES {
        return bad(
            "checkpoint.max_shard_bytes",
            job.checkpoint.max_shard_bytes.to_string(),
            "at most 1 GiB",
        );
    }
    job.plan()?;
    Ok(job)
}

impl JobFile {
    /// The parallel plan of the job.
    pub fn plan(&self) -> Result<schedule::ParallelPlan, CoordinatorError> {
        let p = &self.plan;
        let field = |name: &str, value: &str, expected: &str| {
            CoordinatorError::Job(format!("plan.{name} = {value:?}: expected {expected}"))
        };
        let schedule: schedule::PipelineSchedule = p
            .schedule
            .parse()
            .map_err(|_| field("schedule", &p.schedule, "gpipe, 1f1b, interleaved-1f1b or zb-h1"))?;
        let precision = match p.precision.as_str() {
            "bf16" => model::Precision::Bf16,
            "fp16" => model::Precision::Fp16,
            "fp8" => model::Precision::Fp8,
            other => return Err(field("precision", other, "bf16, fp16 or fp8")),
        };
        let recompute = match p.recompute.as_str() {
            "none" => schedule::Recompute::None,
            "selective" => schedule::Recompute::Selective,
            "full" => schedule::Recompute::Full,
            other => return Err(field("recompute", other, "none, selective or full")),
        };
        for (name, v) in [
            ("tp", p.tp),
            ("pp", p.pp),
            ("dp", p.dp),
            ("cp", p.cp),
            ("vp", p.vp),
            ("micro_batch", p.micro_batch),
        ] {
            if v == 0 {
                return Err(field(name, "0", "at least 1"));
            }
        }
        Ok(schedule::ParallelPlan {
            tp: p.tp,
            pp: p.pp,
            dp: p.dp,
            cp: p.cp,
            vp: p.vp,
            micro_batch: p.micro_batch,
            global_batch: p.global_batch,
            seq_len: p.seq,
            zero_stage: p.zero,
            sequence_parallel: p.tp > 1,
            recompute,
            schedule,
            precision,
            ..schedule::ParallelPlan::default()
        })
    }
}

/// A job ready to run: the step program, the simulator's per-op durations and its step time.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// Job identifier.
    pub id: String,
    /// The file it came from.
    pub file: JobFile,
    /// A fingerprint of the job's inputs: a journal only resumes the job it was written for.
    pub fingerprint: String,
    /// The step program (the simulator's task graph).
    pub program: schedule::StepProgram,
    /// Simulated seconds per op, `[stage][op]`.
    pub durations_s: Vec<Vec<f64>>,
    /// Simulated step time, seconds.
    pub sim_step_time_s: f64,
    /// Emulated payload bytes of one rank's checkpoint shard.
    pub shard_bytes: u64,
}

impl PreparedJob {
    /// Ranks in the job.
    pub fn world(&self) -> u32 {
        self.program.layout.world()
    }
}

/// Builds the step program of a parsed job on the resolved model and cluster, and simulates it once.
pub fn prepare(
    file: &JobFile,
    spec: &model::ModelSpec,
    cluster_spec: &topology::ClusterSpec,
) -> Result<PreparedJob, CoordinatorError> {
    let plan = file.plan()?;
    let gpus = plan.gpus();
    plan.validate(spec, Some(gpus)).map_err(|e| CoordinatorError::Job(e.to_string()))?;
    let gpus = u32::try_from(gpus)
        .map_err(|_| CoordinatorError::Job(format!("plan needs {gpus} GPUs: too many")))?;
    let cluster =
        topology::Cluster::build(cluster_spec, gpus).map_err(|e| CoordinatorError::Job(e.to_string()))?;
    let program = schedule::build(spec, &plan).map_err(|e| CoordinatorError::Job(e.to_string()))?;
    let durations_s =
        sim::op_durations(&program, &cluster, None).map_err(|e| CoordinatorError::Job(e.to_string()))?;
    let sim = sim::simulate(spec, &program, &cluster, &sim::SimConfig::default())
        .map_err(|e| CoordinatorError::Job(e.to_string()))?;
    let fingerprint = crate::journal::sha256_hex(
        format!("{file:?}|{}|{}|{}", spec.name, cluster_spec.name, program.ops_per_replica()).as_bytes(),
    );
    // A rank holds its 1/(tp·pp) of the weights and their Adam state (ZeRO only spreads what is already
    // replicated over dp, so a checkpoint still writes every rank's share once per dp group; emulated here
    // per rank, scaled down like the data plane's payloads).
    let state = plan.state_bytes();
    let rank_state = model::param_counts(spec).total as f64 * (state.weights + state.optimizer)
        / f64::from(plan.tp * plan.pp);
    let shard_bytes = ((rank_state / file.payload_scale as f64) as u64).min(file.checkpoint.max_shard_bytes);
    Ok(PreparedJob {
        shard_bytes,
        id: format!("{}-{}", file.name, &fingerprint[..8]),
        file: file.clone(),
        fingerprint,
        program,
        durations_s,
        sim_step_time_s: sim.report.step_time_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_job_parses_and_prepares() {
        let job = parse(DEFAULT_JOB_TOML).unwrap();
        assert_eq!((job.plan.pp, job.plan.dp), (2, 2));
        let spec = model::preset(&job.model).unwrap();
        let cluster = topology::try_preset(&job.cluster).unwrap().unwrap();
        let prepared = prepare(&job, &spec, &cluster).unwrap();
        assert_eq!(prepared.world(), 4);
        assert_eq!(prepared.durations_s.len(), 2);
        assert!(prepared.sim_step_time_s > 0.0);
        for (stage, d) in prepared.program.stages.iter().zip(&prepared.durations_s) {
            assert_eq!(stage.ops.len(), d.len());
        }
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = DEFAULT_JOB_TOML.replace("pp = 2", "ppp = 2");
        let e = parse(&unknown).unwrap_err().to_string();
        assert!(e.contains("ppp"), "{e}");
        let wrong_type = DEFAULT_JOB_TOML.replace("steps = 10", "steps = \"ten\"");
        let e = parse(&wrong_type).unwrap_err().to_string();
        assert!(e.contains("steps"), "{e}");
        let bad_scale = DEFAULT_JOB_TOML.replace("time_scale = 30.0", "time_scale = -1.0");
        let e = parse(&bad_scale).unwrap_err().to_string();
        assert!(e.contains("time_scale = -1"), "{e}");
        let bad_schedule = DEFAULT_JOB_TOML.replace("schedule = \"1f1b\"", "schedule = \"2f2b\"");
        let e = parse(&bad_schedule).unwrap_err().to_string();
        assert!(e.contains("plan.schedule = \"2f2b\""), "{e}");
    }
}
