//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::server::error::ApiError;
use crate::server::openai::{ModelCard, ModelList};
use crate::server::state::{AppState, ModelEntry};

fn card(m: &ModelEntry) -> ModelCard {
    ModelCard {
        id: m.id.clone(),
        object: "model",
        created: m.created,
        owned_by: "quorum",
        max_model_len: m.engine.info().context_length,
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    state.ensure_ready()?;
    Ok(Json(ModelList {
        object: "list",
        data: state.models().values().map(|m| card(m)).collect(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelCard>, ApiError> {
    let Path(id) = id.map_err(|_| {
        ApiError::invalid(
            "model",
            "the model id in the path is not valid percent-encoded UTF-8",
        )
    })?;
    let entry = state.model(&id)?;
    Ok(Json(card(&entry)))
}
