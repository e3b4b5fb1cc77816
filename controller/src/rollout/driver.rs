//! The driver: claims the record, writes the candidate, moves the waves (select, wait for the nodes to
//! apply, bake, judge), rolls back on a failed gate, and completes by making the candidate `current`.

use super::gate::{judge, Marks, Verdict, Window};
use super::plan::Plan;
use super::record::{Records, WriteError};
use super::select::{extend, FleetNode};
use super::{Fleet, Outcome, RolloutError};
use crate::follow::now_ms;
use crate::publish::discover_until;
use async_nats::jetstream::kv;
use edgeplane_bus::jetstream::CONFIG_KEY;
use edgeplane_bus::rollout::{
    DriverRecord, EventKind, Phase, RolloutEvent, RolloutRecord, WaveRecord, CANDIDATE_KEY,
};
use edgeplane_bus::wire::{AckStatus, ConfigAck, NodeStatus};
use edgeplane_bus::{decode, encode, SCHEMA_VERSION};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A driver that has not written the record for this long is presumed gone (`resume` may take over).
pub const DRIVER_STALE: Duration = Duration::from_secs(10);
/// How often a driver writes the record at least (its sign of life and lease renewal).
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long the driver waits for the nodes to confirm a rollback or an abort.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);
/// How long a status sample waits for replies at most.
const SAMPLE_WINDOW: Duration = Duration::from_millis(400);

/// A driver of one rollout.
pub struct Driver {
    fleet: Fleet,
    records: Records,
    me: String,
    plan: Plan,
    rec: RolloutRecord,
    saved: Instant,
    /// The fleet's last status replies.
    last: Vec<NodeStatus>,
}

/// Why the driver stops driving.
enum Stop {
    /// The rollout ended or paused.
    Done(Outcome),
    /// It cannot go on.
    Error(RolloutError),
}

impl From<RolloutError> for Stop {
    fn from(e: RolloutError) -> Self {
        Stop::Error(e)
    }
}

type Step<T> = Result<T, Stop>;

fn bus(e: impl std::fmt::Display) -> RolloutError {
    RolloutError::Bus(e.to_string())
}

/// `host:pid` of this process.
fn driver_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}:{}", std::process::id())
}

async fn open(fleet: &Fleet) -> Result<kv::Store, RolloutError> {
    crate::publish::open_config(&fleet.client, &fleet.bucket, fleet.replicas)
        .await
        .map_err(bus)
}

/// Whether a driver other than a dead one moves `r` now.
fn driver_alive(r: &RolloutRecord) -> bool {
    r.phase == Phase::Running
        && r.driver
            .as_ref()
            .is_some_and(|d| now_ms().saturating_sub(d.seen_ms) < DRIVER_STALE.as_millis() as u64)
}

/// Starts a rollout of `text` (any config text; routes and clusters are taken) with `plan`, and
/// drives it to its end. Refused if another rollout is active.
pub async fn start(fleet: Fleet, text: &str, plan: Plan) -> Result<Outcome, RolloutError> {
    let (document, routing) = edgeplane_config::document_of_file_text(text)
        .map_err(|e| RolloutError::Invalid(e.lines()))?;
    let kv = open(&fleet).await?;
    let current = kv
        .entry(CONFIG_KEY)
        .await
        .map_err(bus)?
        .filter(|e| e.operation == kv::Operation::Put)
        .ok_or_else(|| {
            RolloutError::Nothing(
                "nothing was pushed yet: push a first document, then roll changes out".into(),
            )
        })?;
    let same = edgeplane_config::document_from_text(&String::from_utf8_lossy(&current.value))
        .is_ok_and(|r| r.hash == routing.hash);
    if same {
        return Err(RolloutError::Nothing(format!(
            "revision {} already holds this document: nothing to roll out",
            current.revision
        )));
    }
    let mut records = Records::new(kv.clone());
    if let Some(r) = records.read().await? {
        let claimed_lately = r.phase == Phase::Starting
            && now_ms().saturating_sub(r.updated_ms) < DRIVER_STALE.as_millis() as u64;
        if claimed_lately || (r.phase.active() && !r.expired(now_ms())) {
            return Err(RolloutError::Busy(format!(
                "rollout {} is {:?} (wave {} of {}): finish, resume or abort it first",
                r.id,
                r.phase,
                r.wave + 1,
                r.plan.waves.len()
            )));
        }
    }
    let me = driver_id();
    let now = now_ms();
    let mut rec = RolloutRecord::starting(
        format!("r{now}-{}", std::process::id()),
        current.revision,
        plan.record(),
        me.clone(),
        now,
    );
    rec.candidate_hash = routing.hash.to_string();
    // Claim the record first (compare-and-set), then write the candidate: two drivers starting at
    // once never both write a candidate.
    match records.write(&rec).await {
        Ok(()) => {}
        Err(WriteError::Conflict) => {
            return Err(RolloutError::Busy(
                "another rollout started at the same moment".into(),
            ))
        }
        Err(WriteError::Bus(e)) => return Err(RolloutError::Bus(e)),
    }
    let candidate = kv
        .put(CANDIDATE_KEY, bytes::Bytes::from(document.into_bytes()))
        .await
        .map_err(bus)?;
    rec.candidate = candidate;
    rec.phase = Phase::Running;
    let mut driver = Driver {
        fleet,
        records,
        me,
        plan,
        rec,
        saved: Instant::now(),
        last: Vec::new(),
    };
    match driver.save(|_| {}).await {
        Ok(()) => {}
        Err(Stop::Done(o)) => return Ok(o),
        Err(Stop::Error(e)) => return Err(e),
    }
    (driver.fleet.progress)(&format!(
        "rollout {}: candidate revision {} (hash {}) over base revision {}, waves {}",
        driver.rec.id,
        candidate,
        &driver.rec.candidate_hash[..12.min(driver.rec.candidate_hash.len())],
        driver.rec.base,
        driver.plan.specs.join(", ")
    ));
    driver
        .event(EventKind::Started, Vec::new(), String::new())
        .await;
    driver.run(false).await
}

/// Takes over an active rollout whose driver is gone (or that is paused) and drives it on, from the
/// start of its current wave. With `skip_bake`, that wave's bake is skipped (`promote`). With
/// `force`, a driver that still looks alive is taken over too (it stops at its next write).
pub async fn resume(fleet: Fleet, skip_bake: bool, force: bool) -> Result<Outcome, RolloutError> {
    let kv = open(&fleet).await?;
    let mut records = Records::new(kv);
    let rec = records
        .read()
        .await?
        .filter(|r| r.phase.active())
        .ok_or_else(|| RolloutError::Nothing("no rollout is in progress".into()))?;
    if driver_alive(&rec) && !force {
        let (id, seen) = rec
            .driver
            .as_ref()
            .map_or(("?", 0), |d| (d.id.as_str(), d.seen_ms));
        return Err(RolloutError::Busy(format!(
            "rollout {} has a driver ({id}) that wrote {} ms ago; it is presumed gone after {:?} \
             without a write. Wait, or take over with --force",
            rec.id,
            now_ms().saturating_sub(seen),
            DRIVER_STALE
        )));
    }
    let plan = Plan::of_record(&rec.plan).map_err(RolloutError::Invalid)?;
    let expired = rec.expired(now_ms());
    let mut driver = Driver {
        fleet,
        records,
        me: driver_id(),
        plan,
        rec,
        saved: Instant::now(),
        last: Vec::new(),
    };
    let me = driver.me.clone();
    // Take over: the write is a compare-and-set on the record just read.
    match driver
        .write_with(|r| {
            r.phase = Phase::Running;
            r.reason.clear();
            r.promote = false;
            r.driver = Some(DriverRecord {
                id: me.clone(),
                seen_ms: now_ms(),
            });
        })
        .await
    {
        Ok(()) => {}
        Err(Stop::Done(o)) => return Ok(o),
        Err(Stop::Error(e)) => return Err(e),
    }
    (driver.fleet.progress)(&format!(
        "rollout {}: resuming at wave {} of {}{}",
        driver.rec.id,
        driver.rec.wave + 1,
        driver.plan.waves.len(),
        if expired {
            " (its lease had run out: the wave's nodes take the candidate again)"
        } else {
            ""
        }
    ));
    driver.run(skip_bake).await
}

/// `edgeplane rollout promote`: ends the current wave's bake now. With a live driver, it is asked
/// (through the record) and this returns `None`; otherwise this process drives on.
pub async fn promote(fleet: Fleet, force: bool) -> Result<Option<Outcome>, RolloutError> {
    let kv = open(&fleet).await?;
    let mut records = Records::new(kv);
    for _ in 0..5 {
        let mut rec = records
            .read()
            .await?
            .filter(|r| r.phase.active())
            .ok_or_else(|| RolloutError::Nothing("no rollout is in progress".into()))?;
        if !driver_alive(&rec) || force {
            return resume(fleet, true, force).await.map(Some);
        }
        rec.promote = true;
        match records.write(&rec).await {
            Ok(()) => return Ok(None),
            Err(WriteError::Conflict) => continue,
            Err(WriteError::Bus(e)) => return Err(RolloutError::Bus(e)),
        }
    }
    Err(RolloutError::Busy(
        "the record kept changing; try again".into(),
    ))
}

/// `edgeplane rollout abort`: every node goes back to the base revision, whether a driver runs or
/// not. Returns the outcome with the time the nodes took to confirm.
pub async fn abort(fleet: Fleet) -> Result<Outcome, RolloutError> {
    let kv = open(&fleet).await?;
    let mut records = Records::new(kv);
    let by = driver_id();
    for _ in 0..5 {
        let mut rec = records
            .read()
            .await?
            .filter(|r| r.phase.active() || r.phase == Phase::Starting)
            .ok_or_else(|| RolloutError::Nothing("no rollout is in progress".into()))?;
        // A rollout still starting has no candidate anybody serves.
        let on_candidate = if rec.candidate == 0 {
            BTreeSet::new()
        } else {
            serving(&fleet, rec.candidate).await?
        };
        let mut acks = subscribe_acks(&fleet).await?;
        let decided = Instant::now();
        rec.phase = Phase::Aborted;
        rec.reason = format!("aborted by {by}");
        rec.updated_ms = now_ms();
        match records.write(&rec).await {
            Ok(()) => {}
            Err(WriteError::Conflict) => continue,
            Err(WriteError::Bus(e)) => return Err(RolloutError::Bus(e)),
        }
        publish_event(
            &fleet,
            &rec,
            EventKind::Aborted,
            Vec::new(),
            rec.reason.clone(),
        )
        .await;
        let took = confirm(&fleet, &mut acks, &on_candidate, rec.base, decided).await;
        return Ok(Outcome::RolledBack {
            reason: rec.reason,
            nodes: on_candidate.into_iter().collect(),
            took,
        });
    }
    Err(RolloutError::Busy(
        "the record kept changing; try again".into(),
    ))
}

/// What `edgeplane rollout status` shows.
#[derive(Debug)]
pub struct StatusReport {
    /// The record, if any.
    pub record: Option<RolloutRecord>,
    /// Whether its driver is alive.
    pub driver_alive: bool,
    /// Whether its lease ran out (nodes serve `current`).
    pub expired: bool,
    /// The nodes online now, each with the revision it serves.
    pub nodes: Vec<NodeStatus>,
}

/// Reads the record and asks the fleet which revision each node serves.
pub async fn status(fleet: Fleet) -> Result<StatusReport, RolloutError> {
    let js = async_nats::jetstream::new(fleet.client.clone());
    // Reading never creates the bucket.
    let record = match js.get_key_value(&fleet.bucket).await {
        Ok(kv) => Records::new(kv).read().await?,
        Err(_) => None,
    };
    let nodes = discover_until(
        &fleet.client,
        &fleet.subjects,
        Duration::from_millis(500),
        usize::MAX,
    )
    .await
    .map_err(bus)?;
    Ok(StatusReport {
        driver_alive: record.as_ref().is_some_and(driver_alive),
        expired: record.as_ref().is_some_and(|r| r.expired(now_ms())),
        record,
        nodes,
    })
}

/// The online nodes serving `revision`.
async fn serving(fleet: &Fleet, revision: u64) -> Result<BTreeSet<String>, RolloutError> {
    Ok(
        discover_until(&fleet.client, &fleet.subjects, SAMPLE_WINDOW, usize::MAX)
            .await
            .map_err(bus)?
            .into_iter()
            .filter(|s| s.revision == revision)
            .map(|s| s.node)
            .collect(),
    )
}

async fn subscribe_acks(fleet: &Fleet) -> Result<async_nats::Subscriber, RolloutError> {
    let acks = fleet
        .client
        .subscribe(fleet.subjects.ack_all())
        .await
        .map_err(bus)?;
    fleet.client.flush().await.map_err(bus)?;
    Ok(acks)
}

/// Waits (within [`CONFIRM_WAIT`]) until every node of `nodes` acknowledged `revision` as applied or
/// reports it in a status reply; the time from `decided` until the last one did.
async fn confirm(
    fleet: &Fleet,
    acks: &mut async_nats::Subscriber,
    nodes: &BTreeSet<String>,
    revision: u64,
    decided: Instant,
) -> Option<Duration> {
    let mut waiting = nodes.clone();
    let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
    // Acknowledgements first; status replies (a slower round) only for nodes whose ack is late.
    let mut poll = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    while !waiting.is_empty() {
        tokio::select! {
            msg = acks.next() => {
                let msg = msg?;
                if let Ok(ack) = decode::<ConfigAck>(&msg.payload) {
                    if ack.revision == revision && ack.status == AckStatus::Applied {
                        waiting.remove(&ack.node);
                    }
                }
            }
            _ = poll.tick() => {
                if let Ok(now) = serving(fleet, revision).await {
                    waiting.retain(|n| !now.contains(n));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return None,
        }
    }
    Some(decided.elapsed())
}

async fn publish_event(
    fleet: &Fleet,
    rec: &RolloutRecord,
    kind: EventKind,
    nodes: Vec<String>,
    detail: String,
) {
    let event = RolloutEvent {
        schema: SCHEMA_VERSION,
        rollout: rec.id.clone(),
        kind,
        wave: rec.wave,
        candidate: rec.candidate,
        nodes,
        detail,
        at_ms: now_ms(),
    };
    let subject = fleet.subjects.rollout_events();
    if let Err(e) = fleet.client.publish(subject, encode(&event)).await {
        tracing::warn!(error = %e, "cannot publish a rollout event");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), fleet.client.flush()).await;
}

impl Driver {
    fn say(&self, line: &str) {
        (self.fleet.progress)(line);
    }

    async fn event(&self, kind: EventKind, nodes: Vec<String>, detail: String) {
        publish_event(&self.fleet, &self.rec, kind, nodes, detail).await;
    }

    /// Writes the record with `change` applied, renewing the driver's lease. Re-reads and applies
    /// `change` again after a concurrent write (an `abort` or a `promote`); stops if the rollout is
    /// no longer this driver's to move.
    async fn save(&mut self, change: impl FnMut(&mut RolloutRecord)) -> Step<()> {
        self.write_with(change).await
    }

    async fn write_with(&mut self, mut change: impl FnMut(&mut RolloutRecord)) -> Step<()> {
        let mut rec = self.rec.clone();
        for _ in 0..5 {
            change(&mut rec);
            let now = now_ms();
            rec.updated_ms = now;
            if let Some(d) = &mut rec.driver {
                d.seen_ms = now;
            }
            rec.expires_ms = match self.plan.abandon_after.as_millis() {
                0 => 0,
                ms => now.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)),
            };
            match self.records.write(&rec).await {
                Ok(()) => {
                    self.rec = rec;
                    self.saved = Instant::now();
                    return Ok(());
                }
                Err(WriteError::Bus(e)) => return Err(Stop::Error(RolloutError::Bus(e))),
                Err(WriteError::Conflict) => {
                    let Some(fresh) = self.records.read().await? else {
                        return Err(Stop::Done(Outcome::Aborted {
                            reason: "the rollout record was deleted".into(),
                        }));
                    };
                    self.check_ours(&fresh)?;
                    // Keep what others may set (`promote`), redo our change on the fresh record.
                    self.rec.promote = fresh.promote;
                    rec = fresh;
                }
            }
        }
        Err(Stop::Error(RolloutError::Busy(
            "the rollout record kept changing under the driver".into(),
        )))
    }

    /// Stops unless `fresh` is still this rollout, active, and moved by this driver.
    fn check_ours(&self, fresh: &RolloutRecord) -> Step<()> {
        if fresh.id != self.rec.id {
            return Err(Stop::Done(Outcome::Aborted {
                reason: format!("another rollout ({}) replaced this one", fresh.id),
            }));
        }
        if !fresh.phase.active() {
            return Err(Stop::Done(Outcome::Aborted {
                reason: if fresh.reason.is_empty() {
                    format!("the rollout became {:?}", fresh.phase)
                } else {
                    fresh.reason.clone()
                },
            }));
        }
        if fresh.driver.as_ref().map(|d| &d.id) != Some(&self.me) {
            return Err(Stop::Done(Outcome::Aborted {
                reason: "another driver took this rollout over".into(),
            }));
        }
        Ok(())
    }

    /// Renews the lease if it was not written for a while; stops if someone aborted.
    async fn keep_alive(&mut self) -> Step<()> {
        if self.saved.elapsed() >= RENEW_EVERY {
            let Some(fresh) = self.records.read().await? else {
                return Err(Stop::Done(Outcome::Aborted {
                    reason: "the rollout record was deleted".into(),
                }));
            };
            self.check_ours(&fresh)?;
            self.rec.promote = fresh.promote;
            self.save(|_| {}).await?;
        }
        Ok(())
    }

    async fn sample(&mut self) -> Result<Vec<NodeStatus>, RolloutError> {
        let now = discover_until(
            &self.fleet.client,
            &self.fleet.subjects,
            SAMPLE_WINDOW,
            usize::MAX,
        )
        .await
        .map_err(bus)?;
        self.last.clone_from(&now);
        Ok(now)
    }

    /// A push forced during the rollout (a newer `current`) supersedes it.
    async fn superseded(&self) -> Step<()> {
        let current = self
            .records
            .kv()
            .entry(CONFIG_KEY)
            .await
            .map_err(bus)?
            .map_or(0, |e| e.revision);
        if current != self.rec.base {
            return Err(Stop::Done(Outcome::Aborted {
                reason: format!(
                    "superseded: revision {current} was pushed to current during the rollout"
                ),
            }));
        }
        Ok(())
    }

    async fn run(mut self, skip_bake: bool) -> Result<Outcome, RolloutError> {
        match self.drive(skip_bake).await {
            Ok(o) => Ok(o),
            Err(Stop::Done(o)) => {
                if let Outcome::Aborted { reason } = &o {
                    self.say(&format!("stopped: {reason}"));
                    if reason.starts_with("superseded") {
                        let reason = reason.clone();
                        let _ = self
                            .write_with(|r| {
                                r.phase = Phase::Aborted;
                                r.reason = reason.clone();
                            })
                            .await;
                        self.event(EventKind::Aborted, Vec::new(), reason.clone())
                            .await;
                    }
                }
                Ok(o)
            }
            Err(Stop::Error(e)) => Err(e),
        }
    }

    async fn drive(&mut self, mut skip_bake: bool) -> Step<Outcome> {
        let mut last_baseline: Option<Window> = None;
        while self.rec.wave < self.plan.waves.len() {
            let k = self.rec.wave;
            self.superseded().await?;
            let mut acks = subscribe_acks(&self.fleet).await?;
            if self.rec.waves.len() <= k {
                self.start_wave(k).await?;
            }
            if let Some(reason) = self.await_applied(k, &mut acks).await? {
                return self.roll_back(reason, Instant::now(), acks).await;
            }
            let applied = now_ms();
            self.save(|r| {
                if let Some(w) = r.waves.get_mut(k) {
                    w.applied_ms = Some(applied);
                }
            })
            .await?;
            if !std::mem::take(&mut skip_bake) {
                match self.bake(k, &mut last_baseline).await? {
                    Baked::Passed => {}
                    Baked::Failed(reason, decided) => {
                        return self.roll_back(reason, decided, acks).await
                    }
                    Baked::NotEnough(n) => {
                        let reason = format!(
                            "wave {}: the candidate's nodes answered {n} requests during the bake, \
                             fewer than min_requests ({}): not enough to judge. \
                             `edgeplane rollout promote` goes on, `abort` rolls back",
                            k + 1,
                            self.plan.min_requests
                        );
                        return self.pause(reason).await;
                    }
                }
            } else {
                self.say(&format!("wave {}: bake skipped (promoted)", k + 1));
                self.event(EventKind::Promoted, Vec::new(), String::new())
                    .await;
            }
            let passed = now_ms();
            self.save(|r| {
                if let Some(w) = r.waves.get_mut(k) {
                    w.passed_ms = Some(passed);
                }
                r.wave = k + 1;
            })
            .await?;
            self.event(EventKind::WavePassed, Vec::new(), String::new())
                .await;
        }
        self.complete().await
    }

    async fn start_wave(&mut self, k: usize) -> Step<()> {
        let fleet: Vec<FleetNode> = self
            .sample()
            .await?
            .into_iter()
            .map(|s| FleetNode {
                id: s.node,
                zone: s.zone,
            })
            .collect();
        let mut selector = self.rec.selector.clone();
        let added = extend(&mut selector, &self.plan.waves[k], &fleet);
        let spec = self.plan.specs.get(k).cloned().unwrap_or_default();
        let started = now_ms();
        let nodes = added.clone();
        self.save(|r| {
            r.selector = selector.clone();
            r.waves.truncate(k);
            r.waves.push(WaveRecord {
                spec: spec.clone(),
                nodes: nodes.clone(),
                started_ms: started,
                ..WaveRecord::default()
            });
        })
        .await?;
        self.say(&format!(
            "wave {} ({spec}): {} ({} of {} online nodes on the candidate)",
            k + 1,
            if added.is_empty() {
                "no new node".to_string()
            } else {
                added.join(", ")
            },
            fleet
                .iter()
                .filter(|n| n.selected(&self.rec.selector))
                .count(),
            fleet.len()
        ));
        self.event(EventKind::WaveStarted, added, spec).await;
        Ok(())
    }

    /// Waits until every online node the selector picks serves the candidate; `Some(reason)` when a
    /// node rejected it or the wave's deadline passed.
    async fn await_applied(
        &mut self,
        k: usize,
        acks: &mut async_nats::Subscriber,
    ) -> Step<Option<String>> {
        let deadline = tokio::time::Instant::now() + self.plan.wave_timeout;
        let candidate = self.rec.candidate;
        let mut rejected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                msg = acks.next() => {
                    if let Some(ack) = msg.and_then(|m| decode::<ConfigAck>(&m.payload).ok()) {
                        if ack.revision == candidate && ack.status == AckStatus::Rejected {
                            rejected.insert(ack.node, ack.errors);
                        }
                    }
                }
                _ = poll.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let waiting = self.not_yet_applied().await?;
                    return Ok(Some(format!(
                        "wave {}: {} did not apply the candidate within {:?}",
                        k + 1,
                        waiting.into_iter().collect::<Vec<_>>().join(", "),
                        self.plan.wave_timeout
                    )));
                }
            }
            if let Some((node, errors)) = rejected.iter().next() {
                return Ok(Some(format!(
                    "wave {}: {node} rejected the candidate: {}",
                    k + 1,
                    errors.join("; ")
                )));
            }
            let waiting = self.not_yet_applied().await?;
            if waiting.is_empty() {
                self.say(&format!(
                    "wave {}: every selected node serves revision {candidate}",
                    k + 1
                ));
                return Ok(None);
            }
            self.keep_alive().await?;
        }
    }

    /// Selected online nodes that do not serve the candidate yet.
    async fn not_yet_applied(&mut self) -> Step<BTreeSet<String>> {
        Ok(self
            .sample()
            .await?
            .into_iter()
            .filter(|s| {
                self.rec.selector.selects(&s.node, s.zone.as_deref())
                    && s.revision != self.rec.candidate
            })
            .map(|s| s.node)
            .collect())
    }

    /// Bakes wave `k`: samples the fleet every `sample_every` for the bake time and judges the
    /// candidate's nodes against the others; fails at once when a gate fails.
    async fn bake(&mut self, k: usize, last_baseline: &mut Option<Window>) -> Step<Baked> {
        let candidate = self.rec.candidate;
        let marks = Marks::start(&self.sample().await?);
        let end = Instant::now() + self.plan.bake;
        self.say(&format!("wave {}: baking for {:?}", k + 1, self.plan.bake));
        loop {
            let wait = self
                .fleet
                .sample_every
                .min(end.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            let now = self.sample().await?;
            let wave = marks.window(&now, |s| s.revision == candidate);
            let base = marks.window(&now, |s| s.revision != candidate);
            let baseline = if base.answered >= self.plan.min_requests.max(1) {
                *last_baseline = Some(base.clone());
                Some(base.clone())
            } else {
                last_baseline.clone()
            };
            let verdict = judge(
                &wave,
                baseline.as_ref(),
                &self.plan.gates,
                self.plan.min_requests,
            );
            let decided = Instant::now();
            let lines = match &verdict {
                Verdict::Pass(l) | Verdict::Fail(_, l) => l.clone(),
                Verdict::NotEnough(n) => vec![format!("not judged yet: {n} requests")],
            };
            let figures = format!(
                "candidate: {}; baseline: {}",
                wave.describe(),
                base.describe()
            );
            if let Verdict::Fail(why, _) = &verdict {
                let reason = format!("wave {}: gate failed: {why} ({figures})", k + 1);
                let lines = lines.clone();
                // Recorded with the rollback's write; nothing is written before the decision acts.
                if let Some(w) = self.rec.waves.get_mut(k) {
                    w.gates = lines;
                }
                return Ok(Baked::Failed(reason, decided));
            }
            let mut promoted = false;
            self.save(|r| {
                if let Some(w) = r.waves.get_mut(k) {
                    w.gates = lines.clone();
                }
                promoted = std::mem::take(&mut r.promote);
            })
            .await?;
            if promoted {
                self.say(&format!("wave {}: promoted: bake ended early", k + 1));
                self.event(EventKind::Promoted, Vec::new(), figures).await;
                return Ok(Baked::Passed);
            }
            if Instant::now() >= end {
                return Ok(match verdict {
                    Verdict::NotEnough(n) => Baked::NotEnough(n),
                    _ => {
                        self.say(&format!("wave {}: passed ({figures})", k + 1));
                        for l in &lines {
                            self.say(&format!("  {l}"));
                        }
                        Baked::Passed
                    }
                });
            }
        }
    }

    async fn roll_back(
        &mut self,
        reason: String,
        decided: Instant,
        mut acks: async_nats::Subscriber,
    ) -> Step<Outcome> {
        let candidate = self.rec.candidate;
        // From the sample the decision was made on: asking the fleet again would delay the rollback.
        let on_candidate: BTreeSet<String> = self
            .last
            .iter()
            .filter(|s| s.revision == candidate)
            .map(|s| s.node.clone())
            .collect();
        let why = reason.clone();
        let gates = self
            .rec
            .waves
            .get(self.rec.wave)
            .map(|w| w.gates.clone())
            .unwrap_or_default();
        let k = self.rec.wave;
        self.save(|r| {
            r.phase = Phase::RolledBack;
            r.reason = why.clone();
            if let Some(w) = r.waves.get_mut(k) {
                if !gates.is_empty() {
                    w.gates = gates.clone();
                }
            }
        })
        .await?;
        self.say(&format!("FAILED: {reason}"));
        for l in &gates {
            self.say(&format!("  {l}"));
        }
        self.event(
            EventKind::Failed,
            on_candidate.iter().cloned().collect(),
            reason.clone(),
        )
        .await;
        let took = confirm(
            &self.fleet,
            &mut acks,
            &on_candidate,
            self.rec.base,
            decided,
        )
        .await;
        let nodes: Vec<String> = on_candidate.into_iter().collect();
        let detail = match took {
            Some(t) => format!(
                "{} node(s) back on revision {} {} ms after the decision",
                nodes.len(),
                self.rec.base,
                t.as_millis()
            ),
            None => format!(
                "not every node confirmed revision {} within {:?}",
                self.rec.base, CONFIRM_WAIT
            ),
        };
        self.say(&format!("rolled back: {detail}"));
        self.event(EventKind::RolledBack, nodes.clone(), detail)
            .await;
        Ok(Outcome::RolledBack {
            reason,
            nodes,
            took,
        })
    }

    async fn pause(&mut self, reason: String) -> Step<Outcome> {
        let why = reason.clone();
        self.save(|r| {
            r.phase = Phase::Paused;
            r.reason = why.clone();
        })
        .await?;
        self.say(&format!("paused: {reason}"));
        self.event(EventKind::Paused, Vec::new(), reason.clone())
            .await;
        Ok(Outcome::Paused { reason })
    }

    /// Makes the candidate `current` (compare-and-set on the base revision) and ends the rollout.
    async fn complete(&mut self) -> Step<Outcome> {
        let kv = self.records.kv().clone();
        let candidate = kv
            .entry_for_revision(CANDIDATE_KEY, self.rec.candidate)
            .await
            .map_err(bus)?
            .ok_or_else(|| {
                RolloutError::Bus(format!(
                    "candidate revision {} is no longer in the bucket",
                    self.rec.candidate
                ))
            })?;
        let mut acks = subscribe_acks(&self.fleet).await?;
        let expected: BTreeSet<String> = self.sample().await?.into_iter().map(|s| s.node).collect();
        let revision = match kv.update(CONFIG_KEY, candidate.value, self.rec.base).await {
            Ok(r) => r,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                return Err(Stop::Done(Outcome::Aborted {
                    reason: "superseded: current changed during the rollout".into(),
                }))
            }
            Err(e) => return Err(Stop::Error(bus(e))),
        };
        self.save(|r| {
            r.phase = Phase::Completed;
            r.completed_revision = Some(revision);
        })
        .await?;
        let detail = format!(
            "the candidate is current as revision {revision} (same document as revision {})",
            self.rec.candidate
        );
        self.say(&format!("completed: {detail}"));
        self.event(EventKind::Completed, Vec::new(), detail).await;
        match confirm(&self.fleet, &mut acks, &expected, revision, Instant::now()).await {
            Some(_) => self.say(&format!(
                "every online node ({}) serves revision {revision}",
                expected.len()
            )),
            None => self.say(&format!(
                "not every node confirmed revision {revision} within {CONFIRM_WAIT:?}"
            )),
        }
        Ok(Outcome::Completed { revision })
    }
}

/// How a bake ended.
enum Baked {
    Passed,
    Failed(String, Instant),
    NotEnough(u64),
}
