//! Routes declared once: each [`Route`] is both an axum route and its
//! operation in the OpenAPI document, so the router and `/openapi.json`
//! cannot disagree.
//!
//! A handler describes itself with `#[utoipa::path(...)]`; `route!` pairs
//! the handler with that description, and [`Routes::route`] routes exactly
//! the methods the description names (anything else is the router's 405).
//! The description's path is the axum path: a catch-all segment is written
//! `{*rest}` there and becomes `{rest}` in the document (`openapi_path`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter};
use tower::Service;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{Components, OpenApi, OpenApiBuilder, RefOr};

/// A handler and its `#[utoipa::path]` description, as one [`Route`]:
/// `route!(jobs::list)` pairs `jobs::list` with `jobs::__path_list`, the
/// type the attribute generates next to it.
macro_rules! route {
    (@split [$($module:ident)*] $handler:ident) => {
        ::pastey::paste! {
            $crate::web::routes::Route::new(
                $($module::)* [<__path_ $handler>],
                $($module::)* $handler,
            )
        }
    };
    (@split [$($module:ident)*] $head:ident $($rest:ident)+) => {
        $crate::web::routes::route!(@split [$($module)* $head] $($rest)+)
    };
    ($($segment:ident)::+) => {
        $crate::web::routes::route!(@split [] $($segment)+)
    };
}
pub(crate) use route;

/// The schemas an operation names, by name.
type Schemas = BTreeMap<String, RefOr<Schema>>;

/// One route: its description and what answers it (a handler or a
/// service).
pub struct Route<E> {
    described: Described,
    endpoint: E,
    any_method: bool,
}

/// Where a route is (axum's syntax), and the methods and operation the
/// document gives it.
struct Described {
    path: String,
    methods: Vec<HttpMethod>,
    operation: Operation,
    schemas: Schemas,
}

impl<E> Route<E> {
    /// `endpoint` as described by `#[utoipa::path]` (its generated type
    /// `P`). Use `route!` rather than naming `P`.
    pub fn new<P>(_: P, endpoint: E) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>,
    {
        let mut operation = P::operation();
        // Where `#[derive(OpenApi)]` would put the attribute's tags.
        let tags = operation.tags.get_or_insert_with(Vec::new);
        tags.extend(P::tags().into_iter().map(str::to_owned));
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        Self {
            described: Described {
                path: P::path(),
                methods: P::methods(),
                operation,
                schemas: schemas.into_iter().collect(),
            },
            endpoint,
            any_method: false,
        }
    }

    /// `endpoint` with an operation written by hand (one that has no
    /// handler function to carry the attribute, like a service's).
    pub fn described(path: &str, method: HttpMethod, operation: Operation, endpoint: E) -> Self {
        Self {
            described: Described {
                path: path.to_owned(),
                methods: vec![method],
                operation,
                schemas: Schemas::new(),
            },
            endpoint,
            any_method: false,
        }
    }

    /// Every method reaches the endpoint, which answers the undocumented
    /// ones itself (in its door's words rather than the router's 405).
    #[must_use]
    pub fn any_method(mut self) -> Self {
        self.any_method = true;
        self
    }

    /// This route at `path` instead of the description's (another name for
    /// a route declared as described), under its own operation id.
    #[must_use]
    pub fn at(mut self, path: &str, operation_id: &str) -> Self {
        path.clone_into(&mut self.described.path);
        self.described.operation.operation_id = Some(operation_id.to_owned());
        self
    }

    /// Which methods the router sends to the endpoint; `None` for all.
    fn filter(&self) -> Option<MethodFilter> {
        if self.any_method {
            return None;
        }
        let filter = self
            .described
            .methods
            .iter()
            .map(|method| match method {
                HttpMethod::Get => MethodFilter::GET,
                HttpMethod::Post => MethodFilter::POST,
                HttpMethod::Put => MethodFilter::PUT,
                HttpMethod::Delete => MethodFilter::DELETE,
                HttpMethod::Options => MethodFilter::OPTIONS,
                HttpMethod::Head => MethodFilter::HEAD,
                HttpMethod::Patch => MethodFilter::PATCH,
                HttpMethod::Trace => MethodFilter::TRACE,
            })
            .reduce(MethodFilter::or);
        Some(filter.unwrap_or_else(|| panic!("{} documents no method", self.described.path)))
    }
}

impl<E> fmt::Debug for Route<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.described.path)
            .field("operation_id", &self.described.operation.operation_id)
            .field("any_method", &self.any_method)
            .finish_non_exhaustive()
    }
}

/// The path as the document writes it: axum's catch-all `{*rest}` is the
/// parameter `{rest}`.
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// A router together with the document of its routes. Built from
/// [`Route`]s only, then layered, given its state and merged like a
/// `Router`.
pub struct Routes<S = ()> {
    router: Router<S>,
    paths: Paths,
    schemas: Schemas,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Paths::new(),
            schemas: Schemas::new(),
        }
    }

    /// Adds a route answered by a handler.
    #[must_use]
    pub fn route<H, T>(self, route: Route<H>) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let endpoint = match route.filter() {
            Some(filter) => axum::routing::on(filter, route.endpoint),
            None => axum::routing::any(route.endpoint),
        };
        self.add(route.described, endpoint)
    }

    /// Adds a route answered by a service.
    #[must_use]
    pub fn service<T>(self, route: Route<T>) -> Self
    where
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse + 'static,
        T::Future: Send + 'static,
    {
        let endpoint = match route.filter() {
            Some(filter) => axum::routing::on_service(filter, route.endpoint),
            None => axum::routing::any_service(route.endpoint),
        };
        self.add(route.described, endpoint)
    }

    fn add(mut self, route: Described, endpoint: MethodRouter<S>) -> Self {
        self.router = self.router.route(&route.path, endpoint);
        let item = PathItem::from_http_methods(route.methods, route.operation);
        let mut paths = Paths::new();
        paths.paths.insert(openapi_path(&route.path), item);
        self.paths.merge(paths);
        for (name, schema) in route.schemas {
            self.schemas.entry(name).or_insert(schema);
        }
        self
    }

    /// Adds `other`'s routes and their document.
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.merge(other.paths);
        for (name, schema) in other.schemas {
            self.schemas.entry(name).or_insert(schema);
        }
        self
    }

    /// Changes the router around the routes (layers, state) and keeps
    /// their document. `wrap` must not add routes: those would go
    /// undocumented.
    pub fn wrap<S2>(self, wrap: impl FnOnce(Router<S>) -> Router<S2>) -> Routes<S2> {
        Routes {
            router: wrap(self.router),
            paths: self.paths,
            schemas: self.schemas,
        }
    }

    /// Gives the routes their state.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        self.wrap(|router| router.with_state(state))
    }

    /// The document of these routes: their paths and the schemas they
    /// name (nothing else, no `info`).
    pub fn openapi(&self) -> OpenApi {
        let mut components = Components::new();
        components.schemas.clone_from(&self.schemas);
        OpenApiBuilder::new()
            .paths(self.paths.clone())
            .components(Some(components))
            .build()
    }

    /// The router.
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

impl<S> fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("paths", &self.paths.paths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Method, StatusCode, header};
    use tower::ServiceExt;

    use super::*;

    /// A thing.
    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct Thing {
        id: String,
    }

    #[utoipa::path(
        method(get, post),
        path = "/things/{id}",
        tag = "things",
        params(("id" = String, Path)),
        responses((status = 200, body = Thing))
    )]
    async fn thing(State(answer): State<&'static str>) -> &'static str {
        answer
    }

    #[utoipa::path(
        put,
        path = "/files/{*rest}",
        params(("rest" = String, Path)),
        responses((status = 200))
    )]
    async fn file() -> &'static str {
        "file"
    }

    const METHODS: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];

    /// Each method's status at `path`, and the `Allow` of the 405s.
    async fn statuses(router: &Router, path: &str) -> Vec<(Method, StatusCode, Option<String>)> {
        let mut out = Vec::new();
        for method in METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(Body::empty())
                .expect("a request");
            let response = router.clone().oneshot(request).await.expect("infallible");
            let allow = response
                .headers()
                .get(header::ALLOW)
                .map(|v| v.to_str().expect("ascii").to_owned());
            out.push((method, response.status(), allow));
        }
        out
    }

    fn operations(routes: &Routes) -> Vec<(String, &'static str, Option<String>)> {
        let doc = serde_json::to_value(routes.openapi()).expect("JSON");
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "head", "post", "put", "delete", "patch", "options"] {
                if let Some(operation) = item.get(method) {
                    let id = operation["operationId"].as_str().map(str::to_owned);
                    out.push((path.clone(), method, id));
                }
            }
        }
        out
    }

    fn things() -> Routes {
        Routes::<&'static str>::new()
            .route(route!(thing))
            .with_state("thing")
    }

    #[tokio::test]
    async fn a_route_answers_exactly_its_documented_methods() {
        let routes = things();
        assert_eq!(
            operations(&routes),
            [
                ("/things/{id}".to_owned(), "get", Some("thing".to_owned())),
                ("/things/{id}".to_owned(), "post", Some("thing".to_owned())),
            ]
        );
        let router = routes.into_router();
        for (method, status, allow) in statuses(&router, "/things/1").await {
            // HEAD is GET without the body (axum routes it with GET).
            if [Method::GET, Method::HEAD, Method::POST].contains(&method) {
                assert_eq!(status, StatusCode::OK, "{method}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
                assert_eq!(allow.as_deref(), Some("GET,HEAD,POST"), "{method}");
            }
        }
    }

    #[tokio::test]
    async fn any_method_reaches_the_handler_but_only_the_documented_are_documented() {
        let routes = Routes::<&'static str>::new()
            .route(route!(thing).any_method())
            .with_state("thing");
        assert_eq!(operations(&routes).len(), 2);
        for (method, status, _) in statuses(&routes.into_router(), "/things/1").await {
            assert_eq!(status, StatusCode::OK, "{method}");
        }
    }

    #[tokio::test]
    async fn a_catch_all_is_a_parameter_in_the_document() {
        let routes = Routes::new().route(route!(file));
        assert_eq!(
            operations(&routes),
            [("/files/{rest}".to_owned(), "put", Some("file".to_owned()))]
        );
        let router = routes.into_router();
        let answers = statuses(&router, "/files/a/b.txt").await;
        assert!(
            answers
                .iter()
                .all(|(m, s, _)| (*m == Method::PUT) == (*s == StatusCode::OK)),
            "{answers:?}"
        );
    }

    #[tokio::test]
    async fn a_route_moved_elsewhere_keeps_its_operation_under_its_own_id() {
        let routes = Routes::new()
            .route(route!(file))
            .route(route!(file).at("/elsewhere", "file_elsewhere"));
        assert_eq!(
            operations(&routes),
            [
                (
                    "/elsewhere".to_owned(),
                    "put",
                    Some("file_elsewhere".to_owned())
                ),
                ("/files/{rest}".to_owned(), "put", Some("file".to_owned())),
            ]
        );
        let router = routes.into_router();
        for path in ["/elsewhere", "/files/x"] {
            let answers = statuses(&router, path).await;
            assert!(
                answers.contains(&(Method::PUT, StatusCode::OK, None)),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_service_is_routed_for_its_documented_method() {
        let service =
            tower::service_fn(|_: Request| async { Ok::<_, Infallible>(StatusCode::ACCEPTED) });
        let operation = utoipa::openapi::path::OperationBuilder::new()
            .operation_id(Some("serve"))
            .build();
        let routes = Routes::new().service(Route::described(
            "/service",
            HttpMethod::Post,
            operation,
            service,
        ));
        assert_eq!(
            operations(&routes),
            [("/service".to_owned(), "post", Some("serve".to_owned()))]
        );
        for (method, status, _) in statuses(&routes.into_router(), "/service").await {
            let expected = if method == Method::POST {
                StatusCode::ACCEPTED
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            assert_eq!(status, expected, "{method}");
        }
    }

    #[test]
    fn the_document_carries_tags_schemas_and_merged_routes() {
        let routes = things().merge(Routes::new().route(route!(file)));
        let doc = serde_json::to_value(routes.openapi()).expect("JSON");
        assert_eq!(
            doc["paths"]["/things/{id}"]["get"]["tags"],
            serde_json::json!(["things"])
        );
        assert_eq!(
            doc["paths"]["/files/{rest}"]["put"]["tags"],
            serde_json::json!([])
        );
        assert!(doc["components"]["schemas"]["Thing"].is_object(), "{doc}");
        assert_eq!(operations(&routes).len(), 3);
    }
}
