//! What every service's OpenAPI document says the same way: errors are
//! `application/problem+json` ([`Problem`](crate::problem::Problem)'s shape), and the answers any
//! operation can give (400 for input that does not parse, 413/415 for bodies, 401 where a token
//! is needed, 404 where a path names something, 405) are listed on every operation, so that a
//! client — or schemathesis — can rely on the document for every status and content type.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder, Schema};

/// Adds the `Problem` schema and the common problem answers to every operation.
#[derive(Debug, Clone, Copy)]
pub struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("Problem".to_owned(), RefOr::T(problem_schema()));
        for (path, item) in &mut openapi.paths.paths {
            let names_something = path.contains('{');
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(operation, names_something);
            }
        }
    }
}

fn add_problems(operation: &mut Operation, names_something: bool) {
    let mut statuses = vec![("400", "The request is not valid (the `field` says where)")];
    if operation.request_body.is_some() {
        statuses.push(("413", "The body is too large"));
        statuses.push(("415", "The body is not of a type this operation takes"));
    }
    if operation
        .security
        .as_ref()
        .is_some_and(|security| !security.is_empty())
    {
        statuses.push(("401", "A valid access token is needed"));
    }
    if names_something {
        statuses.push(("404", "Nothing of that id"));
    }
    statuses.push(("405", "The path does not take that method"));
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    // Every error answer is a problem, whatever the annotation said of its body.
    for (status, response) in &mut operation.responses.responses {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response) {
            response.content.clear();
            response.content.insert(
                crate::problem::CONTENT_TYPE.to_owned(),
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build(),
            );
        }
    }
}

fn problem_schema() -> Schema {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An RFC 9457 problem: a stable `code`, a `title`, the `status`, and optionally a \
                 `detail`, the `field` at fault and further members.",
            ))
            .property("type", text())
            .property("code", text())
            .property("title", text())
            .property("status", ObjectBuilder::new().schema_type(Type::Integer))
            .property("detail", text())
            .property("field", text())
            .required("type")
            .required("code")
            .required("title")
            .required("status")
            .build(),
    )
}
