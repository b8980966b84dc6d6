//! Status over HTTP: `/status` (JSON), `/metrics` (Prometheus text format), both behind the shared token
//! (`Authorization: Bearer <token>`), and `/healthz` without it for load balancers and HTTP probes.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::Shared;

/// What the handlers need.
pub(crate) struct HttpCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) token: Option<String>,
}

/// The HTTP routes.
pub(crate) fn router(ctx: Arc<HttpCtx>) -> axum::Router {
    axum::Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(ctx)
}

fn authorized(ctx: &HttpCtx, headers: &HeaderMap) -> bool {
    match &ctx.token {
        None => true,
        Some(t) => {
            rpc::net::token_matches(t, headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
        }
    }
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "missing or wrong token\n")
        .into_response()
}

async fn status(State(ctx): State<Arc<HttpCtx>>, headers: HeaderMap) -> Response {
    if !authorized(&ctx, &headers) {
        return unauthorized();
    }
    let job = ctx.shared.job.borrow().clone();
    let workers: Vec<serde_json::Value> = ctx
        .shared
        .worker_infos()
        .into_iter()
        .map(|w| {
            serde_json::json!({
                "worker_id": w.worker_id, "name": w.name, "gpus": w.gpus, "backend": w.backend,
                "address": w.address, "alive": w.alive, "ranks": w.ranks, "since_last_beat_s": w.since_last_beat_s,
            })
        })
        .collect();
    let body = serde_json::json!({
        "job": {
            "job_id": job.job_id, "state": job.state.name(), "steps_done": job.steps_done,
            "steps_total": job.steps_total, "workers": job.workers, "nnodes": job.nnodes,
            "last_step_wall_s": job.last_step_wall_s, "last_step_equiv_s": job.last_step_equiv_s,
            "sim_step_time_s": job.sim_step_time_s, "restarts": job.restarts, "message": job.message,
            "checkpoint_step": job.checkpoint_step, "lost_steps": job.lost_steps,
            "recoveries": job.recoveries,
        },
        "workers": workers,
        "uptime_s": ctx.shared.started.elapsed().as_secs_f64(),
    });
    ([(header::CONTENT_TYPE, "application/json")], format!("{body:#}\n")).into_response()
}

async fn metrics(State(ctx): State<Arc<HttpCtx>>, headers: HeaderMap) -> Response {
    if !authorized(&ctx, &headers) {
        return unauthorized();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render_metrics(&ctx.shared)).into_response()
}

/// The Prometheus exposition of the coordinator's state.
pub(crate) fn render_metrics(shared: &Shared) -> String {
    let job = shared.job.borrow().clone();
    let workers = shared.worker_infos();
    let alive = workers.iter().filter(|w| w.alive).count();
    let m = &shared.metrics;
    let mut s = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric(
        "choir_workers_registered",
        "gauge",
        "Workers known to the coordinator.",
        workers.len().to_string(),
    );
    metric("choir_workers_alive", "gauge", "Workers whose heartbeats are current.", alive.to_string());
    metric(
        "choir_heartbeats_total",
        "counter",
        "Heartbeats received.",
        m.heartbeats.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "choir_registrations_total",
        "counter",
        "Registrations accepted.",
        m.registrations.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "choir_worker_deaths_total",
        "counter",
        "Workers declared dead.",
        m.deaths.load(Ordering::Relaxed).to_string(),
    );
    metric("choir_job_steps_done", "gauge", "Steps finished in the current job.", job.steps_done.to_string());
    metric("choir_job_steps_total", "gauge", "Steps in the current job.", job.steps_total.to_string());
    metric("choir_job_restarts", "gauge", "Restarts used by the current job.", job.restarts.to_string());
    metric(
        "choir_job_checkpoint_step",
        "gauge",
        "Steps done at the newest committed checkpoint.",
        job.checkpoint_step.to_string(),
    );
    metric(
        "choir_job_lost_steps_total",
        "counter",
        "Steps run and lost to failures.",
        job.lost_steps.to_string(),
    );
    metric(
        "choir_job_failures_total",
        "counter",
        "Failures detected (each recovered from or being recovered from).",
        job.recoveries.len().to_string(),
    );
    metric(
        "choir_job_last_step_wall_seconds",
        "gauge",
        "Live wall time of the last step.",
        job.last_step_wall_s.to_string(),
    );
    metric(
        "choir_job_last_step_equiv_seconds",
        "gauge",
        "Last step's wall time divided by the time scale (comparable with the simulated step).",
        job.last_step_equiv_s.to_string(),
    );
    metric(
        "choir_job_sim_step_seconds",
        "gauge",
        "Simulated step time of the job.",
        job.sim_step_time_s.to_string(),
    );
    let _ =
        writeln!(s, "# HELP choir_job_state 1 for the job's current state.\n# TYPE choir_job_state gauge");
    let _ = writeln!(s, "choir_job_state{{state=\"{}\"}} 1", job.state.name());
    s
}
