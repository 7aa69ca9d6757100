//! The scenarios (docs/benchmarks.md) and one run of them: set up, connect, bid on schedule,
//! drain, check, report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use tokio::sync::{mpsc, watch};

use crate::Args;
use crate::connection::{self, Due, Resume, Seen, Setup, lock};
use crate::report::{
    Latency, Memory, NOT_DECIDED, Report, Shared, Step, Target, cpu_per_accepted, histogram,
};
use crate::setup::{self, Gateway};

/// How long answers and events may take to arrive after the last bid was due.
const DRAIN: Duration = Duration::from_secs(15);
/// Connections being opened at once.
const CONNECTING: usize = 64;
/// Watchers whose deliveries also feed the latency-over-time plot.
const SAMPLED_WATCHERS: usize = 200;
/// The latency target every bidding scenario is judged by (p99 of the acknowledgement).
pub const ACK_TARGET_MS: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Hot,
    Many,
    Fanout,
    Idle,
    Ramp,
    Smoke,
}

impl std::str::FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        Ok(match name {
            "hot" => Self::Hot,
            "many" => Self::Many,
            "fanout" => Self::Fanout,
            "idle" => Self::Idle,
            "ramp" => Self::Ramp,
            "smoke" => Self::Smoke,
            other => bail!("unknown scenario {other:?}\n{}", crate::usage()),
        })
    }
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Many => "many",
            Self::Fanout => "fanout",
            Self::Idle => "idle",
            Self::Ramp => "ramp",
            Self::Smoke => "smoke",
        }
    }

    /// The shapes: how many of each, and the rate (bids per second, all bidders).
    pub fn defaults(self) -> Plan {
        let plan = |rate: f64, secs, lots, bidders, watchers, lots_each| Plan {
            rate,
            duration: Duration::from_secs(secs),
            lots,
            bidders,
            watchers,
            lots_each,
        };
        match self {
            Self::Hot => plan(1000.0, 20, 1, 400, 5000, 1),
            Self::Many => plan(2000.0, 20, 1000, 2000, 0, 3),
            Self::Fanout => plan(10.0, 20, 1, 20, 10_000, 1),
            Self::Idle => plan(0.0, 5, 0, 0, 10_000, 0),
            // Rising from `rate` by half each step of `duration` until p99 passes the target.
            Self::Ramp => plan(20.0, 5, 1000, 2000, 0, 3),
            Self::Smoke => plan(20.0, 3, 3, 10, 20, 2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub rate: f64,
    /// The bidding time (each step's, when ramping).
    pub duration: Duration,
    pub lots: usize,
    pub bidders: usize,
    pub watchers: usize,
    /// Lots each bidder bids on and watches (a watcher watches one).
    pub lots_each: usize,
}

/// One run: returns whether it was clean.
pub async fn run(args: Args) -> Result<bool> {
    let plan = args.plan.clone();
    let gateway = Arc::new(Gateway::new(&args).await?);
    let pid = args.gateway_pid.or_else(setup::find_gateway);
    let mut memory = Memory {
        pid,
        rss_before_mib: pid.and_then(setup::rss_bytes).map(mib),
        ..Memory::default()
    };
    eprintln!(
        "gavel-load {}: {} lots, {} bidders, {} watchers against {}",
        args.scenario.name(),
        plan.lots,
        plan.bidders,
        plan.watchers,
        args.gateway
    );
    let lots = gateway
        .lots(plan.lots, args.lots_end)
        .await
        .context("creating the lots")?;
    let bidders = gateway
        .bidders(plan.bidders)
        .await
        .context("signing the bidders in")?;
    eprintln!("lots open, bidders signed in; connecting");

    // Who watches what: bidder b bids on lots_each lots from b·lots_each on; watcher w watches
    // lot w (round the lots).
    let each = plan
        .lots_each
        .min(lots.len())
        .max(usize::from(!lots.is_empty()));
    let bidder_lots = |b: usize| -> Vec<String> {
        (0..each)
            .map(|k| lots[(b * each + k) % lots.len()].clone())
            .collect()
    };
    let resume = |index: usize| {
        args.reconnect.then(|| Resume {
            gateway: gateway.clone(),
            index,
            source: gateway.source(index),
        })
    };
    let mut setups: Vec<Setup> = bidders
        .iter()
        .enumerate()
        .map(|(index, bidder)| Setup {
            index,
            token: Some(bidder.token.clone()),
            lots: bidder_lots(index),
            sampled: false,
            resume: resume(index),
        })
        .collect();
    setups.extend((0..plan.watchers).map(|w| Setup {
        index: plan.bidders + w,
        resume: resume(plan.bidders + w),
        token: None,
        lots: if lots.is_empty() {
            Vec::new()
        } else {
            vec![lots[w % lots.len()].clone()]
        },
        sampled: w < SAMPLED_WATCHERS,
    }));

    let connected: Vec<(Setup, Result<connection::Socket>)> = stream::iter(setups)
        .map(|setup| {
            let gateway = &gateway;
            async move {
                let socket = connection::connect(
                    gateway,
                    setup.index,
                    gateway.source(setup.index),
                    setup.token.as_deref(),
                )
                .await;
                (setup, socket)
            }
        })
        .buffer_unordered(CONNECTING)
        .collect()
        .await;
    let mut errors = Vec::new();
    let mut failures = 0;
    let mut sockets = Vec::new();
    for (setup, socket) in connected {
        match socket {
            Ok(socket) => sockets.push((setup, socket)),
            Err(error) => {
                failures += 1;
                if errors.len() < 5 {
                    errors.push(format!("connecting: {error:#}"));
                }
            }
        }
    }
    let connections = sockets.len();

    if args.scenario == Scenario::Idle {
        memory.rss_connected_mib = pid.and_then(setup::rss_bytes).map(mib);
        memory.per_connection_kib = per_connection(&memory, on_first(connections, &gateway));
        for (_, mut socket) in sockets {
            let _ = socket.close(None).await;
        }
        memory.rss_end_mib = pid.and_then(setup::rss_bytes).map(mib);
        let report = report(
            &args,
            connections,
            failures,
            errors,
            memory,
            None,
            Vec::new(),
            Vec::new(),
        );
        return finish(&args, &report);
    }

    // Every connection subscribes, then bids (bidders) and checks what it receives until the
    // watchers have every accepted event.
    let shared = Arc::new(Mutex::new(Shared::new(Instant::now())));
    let (finals_tx, finals_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::channel(1024);
    let mut schedules = Vec::new();
    let mut tasks = Vec::new();
    for (setup, socket) in sockets {
        let (dues_tx, dues_rx) = mpsc::unbounded_channel();
        if setup.token.is_some() {
            schedules.push((dues_tx, setup.lots.len()));
        }
        tasks.push(tokio::spawn(connection::run(
            socket,
            setup,
            shared.clone(),
            dues_rx,
            finals_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut subscribed = 0;
    while ready_rx.recv().await.is_some() {
        subscribed += 1;
    }
    memory.rss_connected_mib = pid.and_then(setup::rss_bytes).map(mib);
    memory.per_connection_kib = per_connection(&memory, on_first(connections, &gateway));
    eprintln!("{subscribed} of {connections} connections subscribed; bidding");

    // The schedule: bid i is due at start + i / rate, whatever came of the bids before it.
    let start = Instant::now() + Duration::from_millis(100);
    lock(&shared).start = start;
    let cpu_before = crate::cpu::snapshot();
    let mut ramp = Vec::new();
    let mut knee = None;
    let mut number = 0u64;
    let mut step_start = start;
    let mut rate = plan.rate;
    let steps = if args.scenario == Scenario::Ramp {
        12
    } else {
        1
    };
    for _ in 0..steps {
        let step_end = step_start + plan.duration;
        let mut due = step_start;
        let mut i = 0u64;
        while due < step_end && !schedules.is_empty() && rate > 0.0 {
            tokio::time::sleep_until(due.into()).await;
            let bidder = usize::try_from(number).unwrap_or(0) % schedules.len();
            let (sender, lots) = &schedules[bidder];
            let round = usize::try_from(number).unwrap_or(0) / schedules.len();
            let _ = sender.send(Due {
                number,
                lot: round % (*lots).max(1),
                due,
            });
            lock(&shared).sent += 1;
            number += 1;
            i += 1;
            due = step_start + Duration::from_secs_f64(i as f64 / rate);
        }
        drain(&shared).await;
        if args.scenario != Scenario::Ramp {
            break;
        }
        let from = step_start.saturating_duration_since(start).as_secs();
        let to = step_end.saturating_duration_since(start).as_secs();
        let step = {
            let shared = lock(&shared);
            let latencies = shared.ack_between(
                usize::try_from(from).unwrap_or(0),
                usize::try_from(to).unwrap_or(0),
            );
            Step {
                rate,
                decided_per_s: latencies.len() as f64 / plan.duration.as_secs_f64(),
                ack: Latency::of(&latencies),
            }
        };
        eprintln!(
            "ramp: {:.0} bids/s → {:.0} decided/s, p99 {:.1} ms",
            step.rate, step.decided_per_s, step.ack.p99_ms
        );
        let broken = step.ack.p99_ms >= ACK_TARGET_MS || step.decided_per_s < 0.9 * step.rate;
        if !broken {
            knee = Some(rate);
        }
        ramp.push(step);
        if broken {
            break;
        }
        rate *= 1.5;
        // The next step starts on a whole second, so that steps never share one.
        let next = Instant::now().saturating_duration_since(start).as_secs() + 1;
        step_start = start + Duration::from_secs(next);
    }
    let answered_at = Instant::now();
    let cpu = crate::cpu::usage(&cpu_before, &crate::cpu::snapshot());
    drop(schedules);

    // Every watcher must reach each of its lots' sequence as the engine has it once bidding
    // ended: the database's state, which covers the last accepted bid and any close after it.
    let mut targets = lock(&shared).last_sequence.clone();
    match gateway.sequences(&lots).await {
        Ok(now) => {
            for (lot, sequence) in now {
                let target = targets.entry(lot).or_default();
                *target = (*target).max(sequence);
            }
        }
        Err(error) => errors.push(format!("reading the lots' sequences: {error:#}")),
    }
    let finals = Arc::new(targets);
    let acks = shared.clone();
    let _ = finals_tx.send(Some(finals));
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.context("a connection task panicked")?);
    }
    memory.rss_end_mib = pid.and_then(setup::rss_bytes).map(mib);
    let window = answered_at.saturating_duration_since(start);
    let mut report = report(
        &args,
        connections,
        failures,
        errors,
        memory,
        Some((shared, window, seen)),
        ramp,
        knee.into_iter().collect(),
    );
    report.cpu_ms_per_accepted = cpu_per_accepted(&cpu, report.accepted_per_s);
    report.cpu_percent = cpu;
    if let Some(path) = &args.acks {
        let mut lines = String::new();
        for ack in &lock(&acks).acks {
            lines.push_str(&serde_json::to_string(ack)?);
            lines.push('\n');
        }
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
        println!("answers as the clients saw them: {}", path.display());
    }
    finish(&args, &report)
}

/// Waits until every bid sent has its answer, or the drain time has passed.
async fn drain(shared: &Mutex<Shared>) {
    let deadline = Instant::now() + DRAIN;
    loop {
        {
            let shared = lock(shared);
            if shared.answered >= shared.sent {
                return;
            }
        }
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The connections the first gateway replica holds (the one whose memory is measured): client
/// `i` goes to replica `i mod n`.
fn on_first(connections: usize, gateway: &Gateway) -> usize {
    connections.div_ceil(gateway.replicas())
}

fn per_connection(memory: &Memory, connections: usize) -> Option<f64> {
    let grown = memory.rss_connected_mib? - memory.rss_before_mib?;
    (connections > 0).then(|| grown * 1024.0 / connections as f64)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    connections: usize,
    failures: usize,
    mut errors: Vec<String>,
    memory: Memory,
    bidding: Option<(Arc<Mutex<Shared>>, Duration, Vec<Seen>)>,
    ramp: Vec<Step>,
    knee: Vec<f64>,
) -> Report {
    let plan = &args.plan;
    let mut report = Report {
        scenario: args.scenario.name().to_owned(),
        gateway: args.gateway.to_string(),
        gateway_replicas: 1 + args.also.len(),
        rate: plan.rate,
        duration_s: plan.duration.as_secs_f64(),
        lots: plan.lots,
        bidders: plan.bidders,
        watchers: plan.watchers,
        connections,
        connection_failures: failures,
        bids_sent: 0,
        bids_answered: 0,
        bids_unanswered: 0,
        accepted: 0,
        refused: Default::default(),
        window_s: 0.0,
        answered_per_s: 0.0,
        decided_per_s: 0.0,
        accepted_per_s: 0.0,
        ack: Latency::default(),
        deliveries: 0,
        deliveries_per_s: 0.0,
        delivery: Latency::default(),
        events_out_of_order: 0,
        events_missing: 0,
        reconnects: 0,
        errors: Vec::new(),
        memory,
        ramp,
        knee_rate: knee.first().copied(),
        targets: Vec::new(),
        timeline: Vec::new(),
        cpu_percent: Vec::new(),
        cpu_ms_per_accepted: None,
    };
    if let Some((shared, window, seen)) = bidding {
        let shared = lock(&shared);
        let window_s = window.as_secs_f64().max(1e-3);
        let ack = shared.ack_between(0, usize::MAX);
        let mut delivery = histogram::<u64>();
        for seen in &seen {
            for value in seen.delivery.iter_recorded() {
                let _ =
                    delivery.record_n(value.value_iterated_to(), u64::from(value.count_at_value()));
            }
            report.deliveries += seen.deliveries;
            report.events_out_of_order += seen.disorder;
            report.events_missing += seen.missing;
            report.reconnects += seen.reconnects;
            if let Some(error) = &seen.error
                && errors.len() < 5
            {
                errors.push(error.clone());
            }
        }
        report.bids_sent = shared.sent;
        report.bids_answered = shared.answered;
        report.bids_unanswered = shared.sent.saturating_sub(shared.answered);
        report.accepted = shared.accepted;
        report.refused = shared.refused.clone();
        report.window_s = window_s;
        report.answered_per_s = shared.answered as f64 / window_s;
        let not_decided: u64 = NOT_DECIDED
            .iter()
            .filter_map(|code| shared.refused.get(*code))
            .sum();
        report.decided_per_s = shared.answered.saturating_sub(not_decided) as f64 / window_s;
        report.accepted_per_s = shared.accepted as f64 / window_s;
        report.ack = Latency::of(&ack);
        report.deliveries_per_s = report.deliveries as f64 / window_s;
        report.delivery = Latency::of(&delivery);
        report.timeline = shared.timeline();
    }
    report.errors = errors;
    report.targets = targets(args.scenario, &report);
    report
}

/// The targets for each scenario, as measured in this run.
fn targets(scenario: Scenario, report: &Report) -> Vec<Target> {
    let at_least = Target::at_least;
    let below = Target::below;
    match scenario {
        Scenario::Many => vec![
            at_least("accepted bids/s", 2000.0, report.accepted_per_s, "/s"),
            below(
                "p99 acknowledgement",
                ACK_TARGET_MS,
                report.ack.p99_ms,
                "ms",
            ),
        ],
        Scenario::Hot => vec![
            at_least(
                "bids decided/s on one lot",
                1000.0,
                report.decided_per_s,
                "/s",
            ),
            below(
                "p99 acknowledgement",
                ACK_TARGET_MS,
                report.ack.p99_ms,
                "ms",
            ),
        ],
        Scenario::Fanout => vec![
            at_least("deliveries/s", 100_000.0, report.deliveries_per_s, "/s"),
            below(
                "p99 accepted → delivered",
                100.0,
                report.delivery.p99_ms,
                "ms",
            ),
        ],
        Scenario::Idle => report
            .memory
            .per_connection_kib
            .map(|per| {
                vec![Target::at_most(
                    "gateway memory per idle connection",
                    8.0,
                    per,
                    "KiB",
                )]
            })
            .unwrap_or_default(),
        Scenario::Ramp | Scenario::Smoke => Vec::new(),
    }
}

fn finish(args: &Args, report: &Report) -> Result<bool> {
    println!("{}", report.markdown());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join(format!("{}.json", report.scenario));
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    println!("report: {}", json.display());
    if !report.timeline.is_empty() {
        let png = args.out.join(format!("{}.png", report.scenario));
        match crate::plot::latency_over_time(report, &png) {
            Ok(()) => println!("latency over time: {}", png.display()),
            Err(error) => eprintln!("no plot: {error:#}"),
        }
    }
    Ok(report.clean())
}
