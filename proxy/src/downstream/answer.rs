//! One request of a downstream connection answered, whichever server read it (hyper's or the own
//! HTTP/1.x server, [`crate::downstream::h1`]): counted as being answered for the watcher, then
//! proxied.

use crate::downstream::body::ClientBody;
use crate::downstream::head_watch::{Answered, Answering};
use crate::downstream::idle::Activity;
use crate::request::forward;
use crate::request::shared::{ConnInfo, Shared};
use http::Request;
use std::convert::Infallible;
use std::sync::Arc;

/// What a request needs of its connection, in one Arc, so a request clones one reference count.
pub(crate) type Ctx = Arc<(Arc<Shared>, ConnInfo, Activity)>;

/// Answers one request.
pub(crate) async fn answer(
    ctx: Ctx,
    req: Request<ClientBody>,
) -> Result<http::Response<Answered>, Infallible> {
    let answering = Answering::start(&ctx.2, req.version());
    let resp = forward::handle(&ctx.0, &ctx.1, req).await;
    Ok(answering.respond(resp))
}
