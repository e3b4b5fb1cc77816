//! edgeplane's controller.
//!
//! The controller keeps a node's desired state: the applied config version, the live membership of each
//! cluster and endpoint health, fed by events (config pushes, heartbeats, scaling events). It is a pure
//! state machine, `apply(event) -> change`, with the NATS plumbing of `edgeplane-bus` around it, and it
//! writes the proxy's tables through a narrow interface.
//!
//! Today the only event source is the node's config file, which the proxy's file watcher applies
//! directly; the state machine lands with the controller issue.
