//! Shared test helpers: random-weight model directories from presets.
#![allow(dead_code)]

use std::path::PathBuf;

use quorum::model::init::{init_model, InitOptions};
use quorum::model::presets::preset;

/// A random-weight model written to a temp dir (kept alive by the returned guard).
pub struct TempModel {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn temp_model(preset_name: &str, seed: u64) -> TempModel {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    let mut opts = InitOptions::new(preset(preset_name).expect("preset"), &dir);
    opts.seed = seed;
    init_model(&opts, &|_| {}).expect("init model");
    TempModel { _tmp: tmp, dir }
}
