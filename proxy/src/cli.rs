//! The binary's commands beyond `run`, `check` and `demo`: the fleet over NATS (`push`, `rollback`,
//! `history`, `fleet`, `provision`), staged rollouts, `diff`, `heartbeat` and `scale`.

pub mod diff;
pub mod heartbeat;
pub mod nats;
pub mod rollout;
pub mod scale;
