//! Joining the fleet: when the node's config has `[node.nats]`, start the controller that follows
//! config pushes, heartbeats and scaling events, answers status requests, and keeps the last applied
//! config on disk; the exchange of rate-limit usage that fleet limits share; and fleet events.

use crate::NodeHandle;
use edgeplane_bus::{BusStats, Subjects};
use edgeplane_controller::composer::Composer;
use edgeplane_controller::identity::Identity;
use edgeplane_controller::options::bus_options;
use edgeplane_controller::pushes::Pushes;
use edgeplane_controller::state::ConfigState;
use edgeplane_controller::store::Store;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The controller's tasks of one node; dropping it stops them.
#[derive(Debug)]
pub struct Controller {
    tasks: Vec<JoinHandle<()>>,
    /// Connection counters.
    pub stats: Arc<BusStats>,
    /// The revision in place.
    pub state: Arc<Mutex<ConfigState>>,
    /// Membership on top of the routing in place, with its counters.
    pub composer: Arc<Composer>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Bad NATS settings.
    #[error(transparent)]
    Bus(#[from] edgeplane_bus::BusError),
}

/// Starts the controller for `node` if its config names NATS. It first applies the config saved on
/// disk (so the node serves the fleet's last config even if NATS is down), then connects in the
/// background and follows pushes.
pub async fn join(node: &NodeHandle) -> Result<Option<Controller>, FleetError> {
    let config = node.config();
    let Some(nats) = &config.nats else {
        return Ok(None);
    };
    let identity = Identity::new(&config.id, config.zone.clone());
    let subjects = Subjects::new(&nats.prefix)?;
    let stats = Arc::new(BusStats::default());
    let state = Arc::new(Mutex::new(ConfigState::default()));
    let composer = Composer::new(
        node.sink(),
        node.initial_routing().clone(),
        nats.membership_grace,
    );
    let sink: Arc<dyn edgeplane_controller::RoutingSink> = composer.clone();
    let options = bus_options(nats, &format!("edgeplane-{}", config.id));
    // With retry on initial connect, this returns at once and connects in the background.
    let client = options.connect(stats.clone()).await?;
    let pushes = Pushes {
        client: client.clone(),
        subjects: subjects.clone(),
        bucket: nats.bucket.clone(),
        identity: identity.clone(),
        sink: sink.clone(),
        store: Store::new(&config.state_dir),
        state: state.clone(),
        stats: stats.clone(),
        metrics: crate::telemetry::push_metrics(node.telemetry()),
        replicas: nats.replicas,
        rollout: Arc::default(),
    };
    let rollout = pushes.rollout.clone();
    pushes.restore();
    let nodes = Arc::new(edgeplane_controller::fleet_view::FleetNodes::default());
    let autoscale = Arc::new(crate::autoscale::AutoscaleView::default());
    let _ = node.admin_context().fleet.set(crate::admin::FleetView {
        state: state.clone(),
        composer: composer.clone(),
        bus: stats.clone(),
        nodes: nodes.clone(),
        autoscale: autoscale.clone(),
    });
    crate::telemetry::collect_controller(
        node.telemetry(),
        stats.clone(),
        state.clone(),
        composer.clone(),
    );
    crate::telemetry::collect_rollout(node.telemetry(), rollout);
    let tasks = vec![
        tokio::spawn(pushes.run()),
        tokio::spawn({
            let client = client.clone();
            composer
                .clone()
                .run(move || client.connection_state() == async_nats::connection::State::Connected)
        }),
        tokio::spawn(edgeplane_controller::heartbeats::run(
            client.clone(),
            subjects.clone(),
            composer.clone(),
            stats.clone(),
        )),
        tokio::spawn(edgeplane_controller::scaling::run(
            client.clone(),
            subjects.clone(),
            nats.scale_stream.clone(),
            nats.replicas,
            composer.clone(),
            stats.clone(),
        )),
        tokio::spawn(edgeplane_controller::status::serve(
            client.clone(),
            subjects.clone(),
            identity.clone(),
            state.clone(),
            sink.clone(),
        )),
        tokio::spawn(edgeplane_controller::dry_run::serve(
            client.clone(),
            subjects.clone(),
            identity.clone(),
            sink.clone(),
        )),
        tokio::spawn(edgeplane_controller::fleet_view::follow(
            client.clone(),
            subjects.clone(),
            nodes,
        )),
        tokio::spawn(crate::autoscale::run(
            client.clone(),
            subjects.clone(),
            config.id.clone(),
            nats.replicas,
            node.tables().clone(),
            autoscale,
            Some(node.telemetry().clone()),
        )),
        tokio::spawn(crate::events::run(
            client.clone(),
            subjects.clone(),
            config.id.clone(),
            crate::events::Sources {
                tables: node.tables().clone(),
                state: state.clone(),
                composer: composer.clone(),
            },
            Some(node.telemetry().clone()),
        )),
        tokio::spawn(crate::limits::report::run(
            client.clone(),
            subjects.clone(),
            config.id.clone(),
            node.tables().clone(),
            Some(node.telemetry().clone()),
        )),
        tokio::spawn(edgeplane_controller::announce::run(
            client,
            subjects,
            identity,
            state.clone(),
            sink,
            nats.replicas,
        )),
    ];
    tracing::info!(urls = ?nats.urls, prefix = %nats.prefix, bucket = %nats.bucket, "following the fleet over NATS");
    Ok(Some(Controller {
        tasks,
        stats,
        state,
        composer,
    }))
}
