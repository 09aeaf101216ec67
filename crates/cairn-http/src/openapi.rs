//! The OpenAPI 3.1 documents of the hub's and the edge's HTTP APIs,
//! generated from the handlers' own `#[utoipa::path]` declarations and
//! served at `/openapi.json` by each process. Bodies are JSON objects
//! described in the README; every refusal has the one error shape below.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// One rule a request broke.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ViolationBody {
    /// The field (or `body`, `authorization`, ...).
    field: String,
    /// The rule, a stable identifier.
    rule: String,
    /// A sentence for people.
    message: String,
    /// The batch index, when the request held several records.
    index: Option<u64>,
}

/// What a refusal says.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The HTTP status.
    status: u16,
    /// A stable code: `invalid`, `unauthorized`, `not_found`, ...
    code: String,
    /// Every violation in one sentence.
    message: String,
    /// Every rule broken.
    violations: Vec<ViolationBody>,
}

/// The body of every 4xx and 5xx answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// Adds the bearer scheme the secured operations name.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The hub's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn hub", description = "Verified, Merkle-logged collection point of the fleet"),
    paths(
        crate::hub::health, crate::hub::status, crate::hub::checkpoint, crate::hub::consistency,
        crate::hub::push, crate::hub::pull, crate::hub::own, crate::hub::snapshot,
        crate::hub::admin::resolve, crate::hub::admin::enroll,
        crate::hub::comply::states, crate::hub::comply::reviews, crate::hub::comply::review, crate::hub::comply::resolve,
        crate::hub::legacy::inventory_ping, crate::hub::legacy::transactions_sync,
        crate::hub::legacy_mobile::mobile_batch, crate::hub::legacy_mobile::mobile_updates,
        crate::hub::legacy_mro::mro_sync, crate::hub::legacy_records::mro_records,
        crate::hub::artifacts::chunk_list, crate::hub::artifacts::chunk,
        crate::hub::observe::metrics, crate::hub::observe::readyz, crate::hub::observe::node_status,
        crate::metrics::healthz,
    ),
    components(schemas(ErrorBody, ErrorDetail, ViolationBody)),
    modifiers(&Bearer)
)]
pub struct HubApi;

/// The edge's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn edge", description = "An edge node's local API"),
    paths(
        crate::edge::health,
        crate::edge::status,
        crate::edge::artifacts,
        crate::edge::artifact,
        crate::edge::collections,
        crate::edge::write_one,
        crate::edge::write_batch,
        crate::edge::get_one,
        crate::edge::list,
        crate::edge_observe::metrics,
        crate::edge_observe::readyz,
        crate::edge_observe::status_page,
        crate::metrics::healthz,
    ),
    components(schemas(ErrorBody, ErrorDetail, ViolationBody))
)]
pub struct EdgeApi;

/// `GET /openapi.json` of the hub.
pub async fn hub_document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(HubApi::openapi())
}

/// `GET /openapi.json` of the edge.
pub async fn edge_document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(EdgeApi::openapi())
}
