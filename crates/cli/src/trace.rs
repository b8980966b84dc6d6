//! Pictures of a simulated step: a Chrome trace (Perfetto) and an SVG of the pipeline schedule.

use std::collections::BTreeMap;
use std::fmt::Write;

use schedule::{OpKind, Pass, StepProgram, Stream};
use sim::Timeline;

fn op_name(program: &StepProgram, stage: u32, op: u32) -> (String, &'static str) {
    let s = &program.stages[stage as usize];
    let o = &s.ops[op as usize];
    let layer = if o.tag.layer < u32::MAX - 1 { format!(" L{}", o.tag.layer) } else { String::new() };
    let mb = if o.tag.pass.is_some() { format!(" mb{}", o.tag.micro_batch) } else { String::new() };
    match o.kind {
        OpKind::Compute { work } => (format!("{}{layer}{mb}", s.works[work as usize].label), "compute"),
        OpKind::Collective { group, op, purpose, .. } => {
            (format!("{} {:?} ({}){layer}{mb}", purpose.name(), op, group.name()), "comm")
        }
        OpKind::Send { peer, .. } => (format!("send → stage {peer}{mb}"), "pp"),
        OpKind::Recv { peer, .. } => (format!("recv ← stage {peer}{mb}"), "pp"),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_owned())
}

/// Chrome trace-event JSON: a process per node, a thread per (GPU, stream).
pub(crate) fn chrome_trace(program: &StepProgram, timeline: &Timeline, gpus_per_node: u32) -> String {
    let mut out = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push_str(",\n");
        }
        first = false;
    };
    let mut named_nodes = std::collections::BTreeSet::new();
    for (rank, stage, records) in &timeline.ranks {
        let node = rank / gpus_per_node.max(1);
        if named_nodes.insert(node) {
            sep(&mut out);
            let _ = write!(
                out,
                "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{node},\"args\":{{\"name\":\"node {node}\"}}}}"
            );
        }
        for s in Stream::ALL {
            sep(&mut out);
            let tid = rank * 8 + s.index() as u32;
            let _ = write!(
                out,
                "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{node},\"tid\":{tid},\"args\":{{\"name\":\"gpu {rank} (stage {stage}) {}\"}}}}",
                s.name()
            );
        }
        for r in records {
            let o = &program.stages[*stage as usize].ops[r.op as usize];
            let (name, cat) = op_name(program, *stage, r.op);
            let tid = rank * 8 + o.stream.index() as u32;
            sep(&mut out);
            let _ = write!(
                out,
                "{{\"ph\":\"X\",\"name\":{},\"cat\":\"{cat}\",\"pid\":{node},\"tid\":{tid},\"ts\":{:.3},\"dur\":{:.3}}}",
                json_str(&name),
                r.start.as_nanos() as f64 / 1e3,
                (r.end.as_nanos() - r.start.as_nanos()) as f64 / 1e3
            );
        }
    }
    out.push_str("\n]}\n");
    out
}

/// An SVG of the pipeline schedule: a row per stage, a box per forward/backward pass of a micro-batch.
pub(crate) fn pipeline_svg(program: &StepProgram, timeline: &Timeline, step_s: f64) -> String {
    let layout = program.layout;
    let rows: Vec<_> = timeline
        .ranks
        .iter()
        .filter(|(r, _, _)| {
            let c = layout.coord(*r);
            c.tp == 0 && c.cp == 0 && c.dp == 0
        })
        .collect();
    let (left, top, row_h, width) = (90.0, 40.0, 34.0, 1100.0);
    let height = top + row_h * rows.len() as f64 + 60.0;
    let scale = width / (step_s * 1e9).max(1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        left + width + 20.0
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"20\" font-size=\"14\">Pipeline schedule: {} (pp {}, vp {}, {} micro-batches); blank = bubble</text>",
        program.plan.schedule.name(),
        program.plan.pp,
        program.plan.vp,
        program.micro_batches
    );
    for (i, (_, stage, records)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let _ = writeln!(s, "<text x=\"8\" y=\"{}\">stage {stage}</text>", y + row_h / 2.0 + 4.0);
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{y}\" width=\"{width}\" height=\"{}\" fill=\"#f4f4f4\"/>",
            row_h - 6.0
        );
        // One box per (pass, micro-batch, chunk): the span of its compute-stream ops.
        let mut spans: BTreeMap<(u8, u32, u32), (u64, u64)> = BTreeMap::new();
        let mut tail: Option<(u64, u64)> = None;
        for r in records.iter() {
            let o = &program.stages[*stage as usize].ops[r.op as usize];
            if o.stream != Stream::Compute {
                continue;
            }
            let (a, b) = (r.start.as_nanos(), r.end.as_nanos());
            match o.tag.pass {
                Some(p) => {
                    let key = (p as u8, o.tag.micro_batch, o.tag.chunk);
                    let e = spans.entry(key).or_insert((a, b));
                    e.0 = e.0.min(a);
                    e.1 = e.1.max(b);
                }
                None => {
                    let t = tail.get_or_insert((a, b));
                    t.0 = t.0.min(a);
                    t.1 = t.1.max(b);
                }
            }
        }
        for ((pass, mb, chunk), (a, b)) in spans {
            let color = match pass {
                p if p == Pass::Forward as u8 => ["#4e79a7", "#76b7f2"][chunk as usize % 2],
                p if p == Pass::BackwardWeight as u8 => "#b07aa1",
                _ => ["#59a14f", "#8cd17d"][chunk as usize % 2],
            };
            let x = left + a as f64 * scale;
            let w = ((b - a) as f64 * scale).max(0.5);
            let _ = writeln!(
                s,
                "<rect x=\"{x:.2}\" y=\"{y}\" width=\"{w:.2}\" height=\"{}\" fill=\"{color}\" stroke=\"white\" stroke-width=\"0.5\"/>",
                row_h - 6.0
            );
            if w > 14.0 {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.2}\" y=\"{}\" fill=\"white\" text-anchor=\"middle\">{mb}</text>",
                    x + w / 2.0,
                    y + row_h / 2.0 + 1.0
                );
            }
        }
        if let Some((a, b)) = tail {
            let _ = writeln!(
                s,
                "<rect x=\"{:.2}\" y=\"{y}\" width=\"{:.2}\" height=\"{}\" fill=\"#9c9c9c\"/>",
                left + a as f64 * scale,
                ((b - a) as f64 * scale).max(0.5),
                row_h - 6.0
            );
        }
    }
    let y = top + rows.len() as f64 * row_h + 16.0;
    let legend = [
        ("#4e79a7", "forward"),
        ("#59a14f", "backward"),
        ("#b07aa1", "weight grad (ZB)"),
        ("#9c9c9c", "optimizer"),
    ];
    for (i, (c, label)) in legend.iter().enumerate() {
        let x = left + i as f64 * 160.0;
        let _ = writeln!(s, "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{c}\"/>");
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{label}</text>", x + 16.0, y + 10.0);
    }
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        y + 34.0,
        left + width,
        y + 34.0,
        units::format_duration(step_s)
    );
    s.push_str("</svg>\n");
    s
}
