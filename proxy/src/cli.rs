//! The binary's commands beyond `run`, `check` and `demo`: the fleet over NATS (`push`, `rollback`,
//! `history`, `fleet`, `provision`, `events`), staged rollouts, `diff`, `heartbeat` and `scale`.

pub(crate) mod diff;
pub(crate) mod events;
pub(crate) mod heartbeat;
pub(crate) mod nats;
pub(crate) mod push;
pub(crate) mod rollout;
pub(crate) mod scale;
