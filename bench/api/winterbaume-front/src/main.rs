//! winterbaume-backup behind a plain HTTP/1.1 server, for the API benchmark
//! (bench/api/run.py): the same transport Coffer and moto answer on (hyper, keep-alive), with
//! nothing in front of the mock but turning hyper's request into winterbaume's and back (and
//! dropping a path's trailing slash, which winterbaume's router does not expect). No
//! authentication: winterbaume checks no signature. The region comes from the request's
//! credential scope (as AWS and Coffer take it), `us-east-1` without one.
//!
//!   winterbaume-front 127.0.0.1:PORT

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use winterbaume_core::{MockRequest, MockService};

async fn answer(
    service: &winterbaume_backup::BackupService,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let region = winterbaume_core::auth::extract_region_from_headers(&parts.headers)
        .unwrap_or_else(|| "us-east-1".to_string());
    // winterbaume's router matches paths without the trailing slash the SDKs send for
    // `/backup/plans/`, `/backup-vaults/` and the like: strip it, as its own tests present them.
    let path = parts.uri.path();
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mock = MockRequest {
        method: parts.method.as_str().to_string(),
        uri: format!("https://backup.{region}.amazonaws.com{path}{query}"),
        headers: parts.headers,
        body,
    };
    let out = service.handle(mock).await;
    let mut response = Response::new(Full::new(out.body));
    *response.status_mut() = http::StatusCode::from_u16(out.status).unwrap_or_default();
    *response.headers_mut() = out.headers;
    response
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5100".to_string());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("listening on {addr}: {e}"));
    let service = Arc::new(winterbaume_backup::BackupService::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(answer(&service, req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
