//! The random-weight model fixture of the in-crate tests (the integration tests have
//! theirs in `tests/common`): [`write_model`] writes a preset with what a test relies on
//! set in the init options.

use std::path::Path;

use super::init::{init_model, InitOptions};
use super::presets::preset;

/// Writes a random-weight model of preset `name` at `dir`. `edit` sets what the test
/// relies on (seed, dtype, reward head, tokenizer, or fields of `config`); untouched
/// options keep [`InitOptions::new`]'s defaults: seed 0, f32, the Qwen3 tokenizer
/// fixture, an LM head.
pub(crate) fn write_model(name: &str, dir: &Path, edit: impl FnOnce(&mut InitOptions)) {
    let mut opts = InitOptions::new(preset(name).expect("preset"), dir);
    edit(&mut opts);
    init_model(&opts, &|_| {}).expect("init model");
}
