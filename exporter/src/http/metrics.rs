//! Prometheus server on `bind_address:port` (9102): GET /metrics (the latest snapshot's
//! pre-rendered body; a scrape never runs tegrastats), GET / (a landing page).

use std::convert::Infallible;

use warp::http::header;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::exposition::CONTENT_TYPE;
use crate::owner::OwnerHandle;

/// The routes of the metrics server.
pub fn routes(
    handle: OwnerHandle,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        let body = handle.snapshot.borrow().body.clone();
        let mut response = Response::new(body.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(CONTENT_TYPE),
        );
        response
    });
    let landing = warp::path::end().and(warp::get()).map(|| {
        warp::reply::html(
            "<html><head><title>edge-metrics-exporter</title></head><body>\
             <h1>edge-metrics-exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>",
        )
        .into_response()
    });
    metrics
        .or(landing)
        .unify()
        .recover(super::error::handle_rejection)
        .unify()
}
