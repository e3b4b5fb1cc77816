//! Autoscale recommendations: the instance count each cluster with `[clusters.<name>.autoscale]`
//! should have ([`decide`]), made by one node of the fleet at a time, the holder of the `autoscale`
//! lease ([`lease`]).

pub mod decide;
pub mod lease;
