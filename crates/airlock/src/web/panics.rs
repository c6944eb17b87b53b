//! A handler that panics answers 500, not a dropped connection: the panic is
//! caught by `tower-http`'s catch-panic layer, logged in the request's span,
//! and answered as an `internal` problem, which the request layer then
//! renders with the request id, logs and counts like any other answer. The
//! process and its other requests go on.

use std::any::Any;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use super::Problem;

/// The longest part of a panic's message that reaches the log.
const MESSAGE_CHARS: usize = 200;

/// The layer that turns a panic into a 500.
pub fn layer() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(answer as fn(Box<dyn Any + Send + 'static>) -> Response)
}

fn answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    let message: String = message.chars().take(MESSAGE_CHARS).collect();
    tracing::error!(panic = %message, "a handler panicked; answered 500");
    Problem {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Internal server error",
        code: "internal",
        detail: None,
        errors: Vec::new(),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_problem_and_the_router_goes_on() {
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(layer());
        let get = |path: &str| Request::get(path).body(Body::empty()).expect("a request");

        let response = router
            .clone()
            .oneshot(get("/boom"))
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem = response.extensions().get::<Problem>().expect("a problem");
        assert_eq!(problem.code, "internal");

        let response = router.oneshot(get("/fine")).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
