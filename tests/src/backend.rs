//! Real hyper backends on `127.0.0.1:0`.

use crate::body::Generated;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a backend answers.
pub type Reply = Response<BoxBody<Bytes, Infallible>>;

/// A request handler.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A running backend; dies when dropped: its listener and every connection close.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name, sent back in `x-backend`.
    pub name: String,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A reply with a status and a text body.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

/// The request's headers as `name: value` lines (lower-case names, in order).
pub fn header_lines(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{}: {}\n", k, v.to_str().unwrap_or("<binary>")))
        .collect()
}

impl Backend {
    /// A backend answering 200 with its name as body and in `x-backend`, and echoing the request's
    /// headers in the body after the first line.
    pub async fn named(name: &str) -> Backend {
        let n = name.to_string();
        Backend::with(name, move |req| {
            let n = n.clone();
            async move {
                let body = format!("{n}\n{}", header_lines(req.headers()));
                text(StatusCode::OK, body)
            }
        })
        .await
    }

    /// A backend that answers every request with `handler`; `x-backend: name` is added to every reply.
    pub async fn with<F, Fut>(name: &str, handler: F) -> Backend
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Backend::serve(name, handler, None, listener)
    }

    /// A backend behind TLS (`config` decides certificate, ALPN and client authentication) that
    /// answers 200 with its name, and `x-version` set to the request's HTTP version.
    pub async fn tls(name: &str, config: Arc<rustls::ServerConfig>) -> Backend {
        let n = name.to_string();
        let handler = move |req: Request<Incoming>| {
            let n = n.clone();
            async move {
                let mut r = text(StatusCode::OK, n);
                r.headers_mut()
                    .insert("x-version", format!("{:?}", req.version()).parse().unwrap());
                r
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Backend::serve(name, handler, Some(acceptor), listener)
    }

    /// [`Backend::named`] on a given address: a backend that comes back where one died.
    pub async fn named_at(name: &str, addr: SocketAddr) -> Backend {
        let n = name.to_string();
        let listener = TcpListener::bind(addr).await.unwrap();
        let handler = move |req: Request<Incoming>| {
            let n = n.clone();
            async move {
                text(
                    StatusCode::OK,
                    format!("{n}\n{}", header_lines(req.headers())),
                )
            }
        };
        Backend::serve(name, handler, None, listener)
    }

    fn serve<F, Fut>(
        name: &str,
        handler: F,
        tls: Option<tokio_rustls::TlsAcceptor>,
        listener: TcpListener,
    ) -> Backend
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (h, n) = (hits.clone(), name.to_string());
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it (dropping the backend) closes every connection, as
            // the kernel does for a process that dies.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let _ = stream.set_nodelay(true);
                let (handler, hits, name, tls) =
                    (handler.clone(), h.clone(), n.clone(), tls.clone());
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let (handler, name) = (handler.clone(), name.clone());
                        async move {
                            let mut resp = handler(req).await;
                            resp.headers_mut()
                                .insert("x-backend", name.parse().unwrap());
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A failed handshake (the proxy refused our certificate) just ends.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            name: name.to_string(),
            hits,
            task,
        }
    }

    /// A backend that holds every request until the test adds permits to the returned semaphore (one
    /// per request to release), then answers 200 `done`.
    pub async fn held(name: &str) -> (Backend, Arc<tokio::sync::Semaphore>) {
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let r = release.clone();
        let backend = Backend::with(name, move |_req| {
            let r = r.clone();
            async move {
                let _permit = r.acquire().await;
                text(StatusCode::OK, "done")
            }
        })
        .await;
        (backend, release)
    }

    /// A backend that reads the whole request body and answers with its length, in bytes, as text.
    pub async fn counting_sink(name: &str) -> Backend {
        Backend::with(name, |req| async move {
            let mut body = req.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    total += data.len() as u64;
                }
            }
            text(StatusCode::OK, total.to_string())
        })
        .await
    }

    /// A backend that sends a generated body of `len` bytes, streamed.
    pub async fn streaming_source(name: &str, len: u64) -> Backend {
        Backend::with(name, move |_req| async move {
            Response::new(Generated::new(len).boxed())
        })
        .await
    }

    /// Requests this backend has received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
