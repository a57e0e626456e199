//! Allocator tuning for serving.

/// Keeps freed memory in the allocator instead of returning it to the OS.
///
/// A decode step allocates and frees the same large buffers every time
/// (logits are `rows × vocab` f32: 4.9 MB for 8 rows of Qwen3's 151 936-token
/// vocabulary; matmul outputs and attention scratch are similar). With
/// glibc's defaults such blocks are `mmap`ed and `munmap`ed, or trimmed from
/// the heap top, on every call, so each step pays page faults and the kernel
/// zeroing fresh pages (≈15% of an 8-rollout decode step under `perf`).
/// Raising the mmap and trim thresholds lets those buffers be reused. Memory
/// that was in use stays mapped for reuse, bounded by the peak.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Blocks above this are still mmapped (weights while loading).
        const MMAP_THRESHOLD: libc::c_int = 256 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes glibc allocator tunables; it is safe
        // to call at any time (it takes the allocator's own locks).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Returns the allocator's free memory to the OS now (glibc `malloc_trim`,
/// which also releases free pages inside the heap, in every arena).
/// [`keep_freed_memory`] keeps freed blocks mapped for the decode loop's
/// reuse; after a burst of large one-off buffers (a multi-megabyte prompt
/// being parsed and tokenized) that would pin the burst's peak forever.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it takes the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Size of a transparent huge page on x86-64 and aarch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// `MADV_COLLAPSE` (Linux 6.1+): collapse a range into huge pages now.
#[cfg(target_os = "linux")]
const MADV_COLLAPSE: libc::c_int = 25;

/// Back the given memory ranges (weights, already written) with 2 MiB
/// transparent huge pages, so streaming them each decode step is not
/// slowed by TLB misses: one TLB entry then covers 512 of the 4 KiB pages
/// a matmul would otherwise walk (measured: 25 → 29 GB/s reading 1 GiB with
/// two threads on this project's machines). Touching ranges are merged and
/// the whole huge pages inside each are marked `MADV_HUGEPAGE` and collapsed
/// at once with `MADV_COLLAPSE`. Best effort: kernels without THP or
/// `MADV_COLLAPSE` leave the memory as it is. Returns the bytes collapsed.
///
/// Only the page size changes, never the contents. Serving commands skip
/// it with `--huge-pages off` (`QUORUM_HUGE_PAGES=off`).
pub fn back_with_huge_pages(ranges: &[(usize, usize)]) -> usize {
    // Merge ranges that touch (allocations next to each other on the heap
    // are a few header bytes apart), then keep the whole huge pages inside
    // each merged span: widening past it can cross into another mapping
    // (an arena's reserved tail), which the kernel refuses.
    let mut spans: Vec<(usize, usize)> = ranges.iter().map(|&(a, n)| (a, a + n)).collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1 + 4096 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let merged = merged.into_iter().filter_map(|(lo, hi)| {
        let (lo, hi) = (
            lo.div_ceil(HUGE_PAGE) * HUGE_PAGE,
            hi / HUGE_PAGE * HUGE_PAGE,
        );
        (hi > lo).then_some((lo, hi))
    });
    let mut done = 0;
    for (lo, hi) in merged {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: madvise with these advice values only changes how the
            // kernel backs this process's own pages (contents are kept);
            // an unmapped or ineligible part makes it fail, nothing else.
            let p = lo as *mut libc::c_void;
            let advise = |advice| match unsafe { libc::madvise(p, hi - lo, advice) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            };
            match advise(libc::MADV_HUGEPAGE).and_then(|()| advise(MADV_COLLAPSE)) {
                Ok(()) => done += hi - lo,
                Err(e) => tracing::debug!(bytes = hi - lo, error = %e, "huge pages not applied"),
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (lo, hi);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_page_backing_keeps_contents() {
        let data: Vec<f32> = (0..(3 << 20)).map(|i| i as f32).collect();
        let bytes = data.len() * 4;
        let done = back_with_huge_pages(&[(data.as_ptr() as usize, bytes)]);
        assert!(done <= bytes);
        assert!(data.iter().enumerate().all(|(i, x)| *x == i as f32));
        // Small ranges are left alone.
        assert_eq!(back_with_huge_pages(&[(data.as_ptr() as usize, 4096)]), 0);
    }
}
