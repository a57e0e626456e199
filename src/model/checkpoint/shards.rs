//! The weight files: tensors grouped into safetensors files of bounded size (HF's
//! sharding and file names), each tensor's bytes produced only when the safetensors
//! writer reaches it, and `model.safetensors.index.json` for more than one file.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensorError, View};

use super::files::write_json;
use super::options::WriteProgress;
use super::tensors::{CheckpointDType, TensorData};
use crate::model::ModelError;

/// Group the tensor indices of `order` into files of at most `max_bytes` of tensor data
/// each (a tensor larger than the limit gets a file of its own), in that order, like HF's
/// `save_pretrained`.
pub(super) fn plan_shards(
    order: &[usize],
    numels: &[u64],
    esize: u64,
    max_bytes: u64,
) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut current = 0u64;
    for &i in order {
        let b = numels[i] * esize;
        let last = shards.len() - 1;
        if !shards[last].is_empty() && current + b > max_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        let last = shards.len() - 1;
        shards[last].push(i);
        current += b;
    }
    shards
}

/// HF file names: `model.safetensors`, or `model-00001-of-00003.safetensors`, ...
fn shard_file_names(count: usize) -> Vec<String> {
    if count == 1 {
        vec!["model.safetensors".to_string()]
    } else {
        (1..=count)
            .map(|i| format!("model-{i:05}-of-{count:05}.safetensors"))
            .collect()
    }
}

/// Shared state of the tensors being written: dtype, progress counters, the first error.
pub(super) struct WriteCtx<'a> {
    pub(super) dtype: CheckpointDType,
    pub(super) progress: &'a dyn Fn(WriteProgress<'_>),
    pub(super) done: Cell<usize>,
    pub(super) bytes_done: Cell<u64>,
    pub(super) total: usize,
    pub(super) bytes_total: u64,
    /// `View::data` cannot fail, so a failing tensor parks its error here (and the file
    /// gets zeros); the writer checks it after each file and aborts the staging dir.
    pub(super) error: RefCell<Option<ModelError>>,
}

/// A tensor whose bytes are produced only when the safetensors writer asks for them.
struct Staged<'a, T> {
    tensor: &'a T,
    shape: &'a [usize],
    ctx: &'a WriteCtx<'a>,
}

impl<T: TensorData> View for Staged<'_, T> {
    fn dtype(&self) -> Dtype {
        self.ctx.dtype.safetensors()
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let ctx = self.ctx;
        let len = self.data_len();
        if ctx.error.borrow().is_some() {
            return Cow::Owned(vec![0; len]);
        }
        let data = match self.tensor.bytes(ctx.dtype) {
            Ok(d) if d.len() == len => d,
            Ok(d) => {
                *ctx.error.borrow_mut() = Some(ModelError::Weight {
                    name: self.tensor.name().to_string(),
                    message: format!("produced {} bytes, its shape needs {len}", d.len()),
                });
                vec![0; len]
            }
            Err(e) => {
                *ctx.error.borrow_mut() = Some(e);
                vec![0; len]
            }
        };
        ctx.done.set(ctx.done.get() + 1);
        ctx.bytes_done.set(ctx.bytes_done.get() + data.len() as u64);
        (ctx.progress)(WriteProgress::Tensor {
            name: self.tensor.name(),
            done: ctx.done.get(),
            total: ctx.total,
            bytes: data.len() as u64,
            bytes_done: ctx.bytes_done.get(),
            bytes_total: ctx.bytes_total,
        });
        Cow::Owned(data)
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.ctx.dtype.size()
    }
}

/// Writes the safetensors files of `shards` (tensor indices per file) into the staging
/// directory `tdir`, reporting each file by its final location under `out`, and the index
/// when there is more than one file.
pub(super) fn write_weights<T: TensorData>(
    tdir: &Path,
    out: &Path,
    (tensors, shapes): (&[T], &[Vec<usize>]),
    shards: &[Vec<usize>],
    ctx: &WriteCtx<'_>,
) -> Result<(), ModelError> {
    let progress = ctx.progress;
    let names = shard_file_names(shards.len());
    let mut weight_map = BTreeMap::new();
    for (index, (shard, file)) in shards.iter().zip(&names).enumerate() {
        let path = tdir.join(file);
        let views = shard.iter().map(|&t| {
            (
                tensors[t].name(),
                Staged {
                    tensor: &tensors[t],
                    shape: &shapes[t],
                    ctx,
                },
            )
        });
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(metadata), &path)
            .map_err(|e| safetensors_error(e, &out.join(file)))?;
        if let Some(e) = ctx.error.borrow_mut().take() {
            return Err(e);
        }
        for &t in shard {
            weight_map.insert(tensors[t].name().to_string(), file.clone());
        }
        progress(WriteProgress::File {
            path: &out.join(file),
            index,
            count: shards.len(),
        });
    }
    if shards.len() > 1 {
        let index = serde_json::json!({
            "metadata": { "total_size": ctx.bytes_total },
            "weight_map": weight_map,
        });
        write_json(&tdir.join("model.safetensors.index.json"), &index)?;
    }
    Ok(())
}

fn safetensors_error(e: SafeTensorError, path: &Path) -> ModelError {
    match e {
        SafeTensorError::IoError(source) => ModelError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => ModelError::Malformed {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}
