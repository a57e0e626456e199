//! Unit tests of the batching policy: plain numbers, no model.

use super::*;

fn cfg(budget: usize, chunk: usize, max_decode: usize) -> SchedulerConfig {
    SchedulerConfig {
        kv_budget_tokens: budget,
        prefill_chunk: chunk,
        max_decode_seqs: max_decode,
    }
}

fn shape(prompt: usize, n: usize, max_new: usize) -> GroupShape {
    GroupShape {
        prompt_tokens: prompt,
        n,
        max_new_tokens: max_new,
    }
}

/// Run plans until `id` is decoding.
fn prefill_fully(s: &mut Scheduler, id: GroupId) {
    for _ in 0..1000 {
        let plan = s.plan_step();
        let done = plan
            .work
            .iter()
            .any(|w| matches!(w, Work::Prefill { group, last: true, .. } if *group == id));
        if done {
            return;
        }
    }
    panic!("group {id} never finished prefill");
}

#[test]
fn long_prompt_is_prefilled_in_chunks_while_another_group_keeps_decoding() {
    let mut s = Scheduler::new(cfg(100_000, 512, 64));
    s.enqueue(1, shape(10, 2, 50)).unwrap();
    s.admit();
    prefill_fully(&mut s, 1);
    s.enqueue(2, shape(1300, 1, 10)).unwrap();
    assert_eq!(s.admit(), vec![2]);
    let mut chunks = Vec::new();
    loop {
        let plan = s.plan_step();
        assert!(
            plan.work.contains(&Work::Decode { group: 1, count: 2 }),
            "group 1 decodes every step: {plan:?}"
        );
        let pre: Vec<_> = plan
            .work
            .iter()
            .filter_map(|w| match w {
                Work::Prefill {
                    group: 2,
                    start,
                    len,
                    last,
                } => Some((*start, *len, *last)),
                _ => None,
            })
            .collect();
        assert_eq!(pre.len(), 1);
        chunks.push(pre[0]);
        if pre[0].2 {
            break;
        }
    }
    assert_eq!(
        chunks,
        vec![(0, 512, false), (512, 512, false), (1024, 276, true)]
    );
    // Now both decode.
    let plan = s.plan_step();
    assert!(plan.work.contains(&Work::Decode { group: 2, count: 1 }));
}

#[test]
fn prefill_budget_spans_several_short_prompts_oldest_first() {
    let mut s = Scheduler::new(cfg(100_000, 100, 64));
    for id in 1..=3 {
        s.enqueue(id, shape(40, 1, 5)).unwrap();
    }
    s.admit();
    let plan = s.plan_step();
    assert_eq!(
        plan.work,
        vec![
            Work::Prefill {
                group: 1,
                start: 0,
                len: 40,
                last: true
            },
            Work::Prefill {
                group: 2,
                start: 0,
                len: 40,
                last: true
            },
            Work::Prefill {
                group: 3,
                start: 0,
                len: 20,
                last: false
            },
        ]
    );
    assert_eq!(plan.tokens(), 100);
}

#[test]
fn big_group_does_not_starve_small_group_when_decode_cap_binds() {
    let mut s = Scheduler::new(cfg(1_000_000, 512, 8));
    s.enqueue(1, shape(4, 64, 10)).unwrap();
    s.enqueue(2, shape(4, 1, 10)).unwrap();
    s.admit();
    s.plan_step(); // both prompts fit one chunk
    for _ in 0..10 {
        let plan = s.plan_step();
        assert_eq!(plan.tokens(), 8, "{plan:?}");
        assert!(plan.work.contains(&Work::Decode { group: 2, count: 1 }));
        assert!(plan.work.contains(&Work::Decode { group: 1, count: 7 }));
    }
}

#[test]
fn decode_slots_rotate_between_equal_groups_under_the_cap() {
    let mut s = Scheduler::new(cfg(1_000_000, 512, 3));
    for id in 1..=2 {
        s.enqueue(id, shape(4, 4, 10)).unwrap();
    }
    s.admit();
    s.plan_step();
    let mut totals = [0usize; 2];
    for _ in 0..10 {
        for w in s.plan_step().work {
            if let Work::Decode { group, count } = w {
                totals[group as usize - 1] += count;
            }
        }
    }
    assert_eq!(totals, [15, 15]);
}

#[test]
fn admission_is_oldest_first_and_waits_for_released_budget() {
    let mut s = Scheduler::new(cfg(100, 512, 64));
    s.enqueue(1, shape(10, 2, 30)).unwrap(); // 70: the prompt once, 30 per rollout
    s.enqueue(2, shape(10, 1, 30)).unwrap(); // 40: does not fit yet
    s.enqueue(3, shape(1, 1, 1)).unwrap(); // 2: fits, but waits behind 2
    assert_eq!(s.admit(), vec![1]);
    assert_eq!(s.reserved_tokens(), 70);
    prefill_fully(&mut s, 1);
    s.set_live(1, 1); // one rollout finished: 40 tokens back
    assert_eq!(s.reserved_tokens(), 40);
    assert_eq!(s.admit(), vec![2, 3]);
    assert!(s.remove(1));
    assert!(s.remove(2));
    assert!(s.remove(3));
    assert_eq!(s.reserved_tokens(), 0);
    assert!(s.is_idle());
}

#[test]
fn group_larger_than_the_whole_budget_is_rejected() {
    let mut s = Scheduler::new(cfg(100, 512, 64));
    assert_eq!(
        s.enqueue(1, shape(10, 5, 20)),
        Err(ScheduleError::TooLarge {
            needed: 110,
            budget: 100
        })
    );
    assert!(s.is_idle());
}

#[test]
fn prefix_hit_skips_prefill_but_always_runs_one_token() {
    let mut s = Scheduler::new(cfg(1000, 512, 64));
    s.enqueue(1, shape(50, 1, 5)).unwrap();
    s.enqueue(2, shape(50, 1, 5)).unwrap();
    s.admit();
    s.skip_prefill(1, 30);
    s.skip_prefill(2, 50);
    let plan = s.plan_step();
    assert_eq!(
        plan.work,
        vec![
            Work::Prefill {
                group: 1,
                start: 30,
                len: 20,
                last: true
            },
            Work::Prefill {
                group: 2,
                start: 49,
                len: 1,
                last: true
            },
        ]
    );
}

#[test]
fn removing_a_waiting_group_unblocks_the_queue() {
    let mut s = Scheduler::new(cfg(100, 512, 64));
    s.enqueue(1, shape(10, 1, 80)).unwrap();
    s.enqueue(2, shape(10, 1, 80)).unwrap();
    s.enqueue(3, shape(1, 1, 1)).unwrap();
    assert_eq!(s.admit(), vec![1]);
    assert!(s.remove(2));
    assert_eq!(s.admit(), vec![3]);
    // Nothing is left waiting: with the two admitted groups gone, it is idle.
    assert!(s.remove(1) && s.remove(3));
    assert!(s.is_idle());
}
