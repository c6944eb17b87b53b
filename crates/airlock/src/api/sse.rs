//! How `/openapi.json` describes a Server-Sent Events stream: each event as
//! the object a client parses it into (`event`, `id`, and `data`, a string
//! holding JSON, with that JSON's schema as `contentSchema`), so that tools
//! validate what a stream carries, not the JSON alone.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

/// One kind of event: its `event` names, and `T`, the schema of the JSON
/// in its `data`.
fn event<T: utoipa::ToSchema>(names: &[&str]) -> Schema {
    ObjectBuilder::new()
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names.iter().copied())),
        )
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Send it back as `Last-Event-ID` to resume after it.")),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(Ref::from_schema_name(T::name()))),
        )
        .required("event")
        .required("id")
        .required("data")
        .into()
}

/// The events of `GET /v1/jobs/{id}/events`.
pub(crate) struct JobEventStream;

impl utoipa::PartialSchema for JobEventStream {
    fn schema() -> RefOr<Schema> {
        let mut schema = event::<super::jobs::JobEvent>(&["state"]);
        if let Schema::Object(object) = &mut schema {
            object.description = Some("One event of the stream: a state of the job.".to_owned());
        }
        schema.into()
    }
}

impl utoipa::ToSchema for JobEventStream {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with::<super::jobs::JobEvent>(schemas);
    }
}

/// The events of `GET /v1/events`.
pub(crate) struct ChangeStream;

impl utoipa::PartialSchema for ChangeStream {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "One event of the stream: a job's change, or an approval request's.",
            ))
            .item(event::<super::events::JobChange>(&["job"]))
            .item(event::<airlock_domain::approvals::view::ApprovalView>(&[
                "approval.requested",
                "approval.approved",
                "approval.denied",
                "approval.expired",
            ]))
            .into()
    }
}

impl utoipa::ToSchema for ChangeStream {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with::<super::events::JobChange>(schemas);
        with::<airlock_domain::approvals::view::ApprovalView>(schemas);
    }
}

/// Registers `T` (the JSON of an event's `data`) and what it refers to as
/// components.
fn with<T: utoipa::ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}
