//! An evaluation must not copy the environment document: documents reach tens of MiB and every
//! request asks the gate. A counting allocator measures what one evaluation allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use integrations_flags::Flags;
use serde_json::{json, Map, Value};

struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the thread-local may already be gone while a thread shuts down.
        let _ = ALLOCATED.try_with(|count| count.set(count.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocated_on_this_thread() -> usize {
    ALLOCATED.with(Cell::get)
}

/// A document of about `bytes` bytes: many segments on a trait no tenant has, each with a long value.
fn large_document(bytes: usize) -> String {
    let value = "x".repeat(32 * 1024);
    let segments: Vec<Value> = (0..bytes / value.len())
        .map(|i| {
            json!({
                "id": i + 100, "name": format!("segment {i}"),
                "rules": [{"type": "ALL", "rules": [], "conditions": [
                    {"operator": "EQUAL", "property_": "region", "value": format!("{value}{i}")}
                ]}],
                "feature_states": []
            })
        })
        .collect();
    json!({
        "id": 1, "api_key": "big-env", "name": "Big",
        "project": {
            "id": 1, "name": "integrations", "hide_disabled_flags": false,
            "organisation": {"id": 1, "name": "Org", "feature_analytics": false, "stop_serving_flags": false, "persist_trait_data": true},
            "segments": segments
        },
        "feature_states": [{
            "django_id": 11, "featurestate_uuid": "11111111-0000-0000-0000-000000000000",
            "feature": {"id": 1, "name": "plugin.jira", "type": "STANDARD"},
            "enabled": true, "feature_state_value": null, "multivariate_feature_state_values": []
        }],
        "identity_overrides": []
    })
    .to_string()
}

#[test]
fn evaluating_a_32_mib_document_does_not_copy_it() {
    let document = large_document(32 * 1024 * 1024);
    let flags = Flags::from_document(&document).expect("document parses");
    drop(document);
    let mut traits = Map::new();
    traits.insert("plan".into(), json!("pro"));

    let before = allocated_on_this_thread();
    for _ in 0..4 {
        assert!(flags.plugin_allowed("acme", &traits, "jira"));
    }
    let per_call = (allocated_on_this_thread() - before) / 4;
    assert!(
        per_call < 1024 * 1024,
        "one evaluation allocated {per_call} bytes: the document is being copied"
    );
}
