//! `choir inject`: injects a fault into a running job through the coordinator's API, for rehearsing recovery.
//! The coordinator maps ranks to the workers hosting them, forwards the fault, and measures how long it takes
//! to detect and to recover from it (shown by `choir up`/`choir coordinator` at the end, and in `WatchJob`).

use anyhow::Context;
use serde::Serialize;

use crate::cmd::coordinator::SecurityArgs;
use crate::cmd::worker::coordinator_url;
use crate::exit::bad_input;
use crate::output::print_json;
use rpc::types::Fault;

/// Flags of `choir inject`. Exactly one fault.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("fault").required(true).args(["kill", "kill_coordinator", "hang", "freeze", "slow", "partition", "corrupt_checkpoint", "drain", "drain_worker"])))]
pub(crate) struct Args {
    /// The coordinator, as a URL or HOST:PORT.
    #[arg(long, env = "CHOIR_COORDINATOR", default_value = "127.0.0.1:29400")]
    coordinator: String,
    /// Kill the worker hosting RANK: its process exits at once.
    #[arg(long, value_name = "RANK")]
    kill: Option<u32>,
    /// Kill the coordinator itself: its process exits at once (code 137), as with `kill -9`.
    #[arg(long)]
    kill_coordinator: bool,
    /// With --kill: die half-way through writing the next checkpoint shard instead of now. With
    /// --kill-coordinator: die once the next checkpoint's shards are written, before its manifest.
    #[arg(long)]
    during_checkpoint: bool,
    /// Hang the worker hosting RANK for --for: no progress, but it stays alive and keeps heartbeating (as a
    /// process stuck in a collective does). Found by the coordinator's progress watchdog (--hang-timeout).
    #[arg(long, value_name = "RANK")]
    hang: Option<u32>,
    /// Freeze the worker hosting RANK for --for: no progress and no heartbeats (a frozen machine).
    #[arg(long, value_name = "RANK")]
    freeze: Option<u32>,
    /// Slow the compute of the worker hosting RANK by --factor for --for (or until the job restarts).
    #[arg(long, value_name = "RANK")]
    slow: Option<u32>,
    /// Cut the workers hosting RANKS (comma-separated) off from the coordinator and every other worker for --for.
    #[arg(long, value_name = "RANKS", value_delimiter = ',')]
    partition: Option<Vec<u32>>,
    /// Flip a byte in one shard of the checkpoint taken after STEP steps (`latest`: the newest). Only a
    /// checksum finds it, when a recovery tries to restore it.
    #[arg(long, value_name = "STEP|latest")]
    corrupt_checkpoint: Option<String>,
    /// Drain the worker hosting RANK (planned maintenance): at the next step boundary the coordinator commits a
    /// checkpoint, shuts the worker down and goes on from that checkpoint without it (a spare takes its
    /// place, or the job waits for one). Nothing is lost. See also --drain-worker.
    #[arg(long, value_name = "RANK")]
    drain: Option<u32>,
    /// Drain a worker by its id (as `choir up`'s summary or the coordinator's /status lists it); a spare
    /// leaves at once.
    #[arg(long, value_name = "ID")]
    drain_worker: Option<String>,
    /// How long a hang, freeze, slow-down or partition lasts.
    #[arg(long = "for", value_name = "DURATION", default_value = "10s")]
    duration: String,
    /// Slow-down factor for --slow (1 to 1000).
    #[arg(long, default_value_t = 3.0)]
    factor: f64,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Serialize)]
struct Answer<'a> {
    fault: &'a str,
    detail: String,
}

/// Runs `choir inject`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    use coordinator::client::Target;
    let security = args.security.load(None)?;
    let url = coordinator_url(&args.coordinator, &security);
    let duration_s = units::parse_duration(&args.duration).map_err(|e| bad_input(format!("--for: {e}")))?;
    if !(0.0..=86_400.0).contains(&duration_s) {
        return Err(bad_input(format!("--for {}: expected at most 24 h", args.duration)));
    }
    if !(1.0..=1000.0).contains(&args.factor) {
        return Err(bad_input(format!(
            "--factor {}: expected a slow-down factor from 1 to 1000",
            args.factor
        )));
    }
    if args.during_checkpoint && args.kill.is_none() && !args.kill_coordinator {
        return Err(bad_input("--during-checkpoint goes with --kill RANK or --kill-coordinator"));
    }
    let (target, fault) = if args.kill_coordinator {
        (Target::Coordinator, Fault::Kill { during_checkpoint: args.during_checkpoint })
    } else if let Some(r) = args.kill {
        (Target::Ranks(vec![r]), Fault::Kill { during_checkpoint: args.during_checkpoint })
    } else if let Some(r) = args.hang {
        (Target::Ranks(vec![r]), Fault::Hang { duration_s })
    } else if let Some(r) = args.freeze {
        (Target::Ranks(vec![r]), Fault::Freeze { duration_s })
    } else if let Some(r) = args.slow {
        (Target::Ranks(vec![r]), Fault::Slow { duration_s, factor: args.factor })
    } else if let Some(r) = args.drain {
        (Target::Ranks(vec![r]), Fault::Drain)
    } else if let Some(id) = &args.drain_worker {
        (Target::Worker(id.clone()), Fault::Drain)
    } else if let Some(ranks) = &args.partition {
        if ranks.is_empty() {
            return Err(bad_input("--partition: expected comma-separated ranks, e.g. 2,3"));
        }
        (Target::Ranks(ranks.clone()), Fault::Partition { duration_s, peers: vec![] })
    } else if let Some(step) = &args.corrupt_checkpoint {
        let step = match step.as_str() {
            "latest" => 0,
            s => match s.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(bad_input(format!(
                        "--corrupt-checkpoint {s}: expected a step count of a checkpoint (at least 1) or `latest`"
                    )));
                }
            },
        };
        (Target::Job, Fault::CorruptCheckpoint { step })
    } else {
        return Err(bad_input(
            "name a fault: --kill, --hang, --freeze, --slow, --partition, --drain or --corrupt-checkpoint",
        ));
    };
    let name = fault.name();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let detail = runtime
        .block_on(coordinator::client::inject_fault(&url, &security, target, fault))
        .with_context(|| format!("injecting {name} through {url}"))?;
    if args.json {
        print_json(&Answer { fault: name, detail })?;
    } else {
        println!("{detail}");
    }
    Ok(())
}
